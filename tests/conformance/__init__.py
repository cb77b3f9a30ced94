"""A Python port of the OCI distribution-spec conformance suite (``conformance/``, v1.1.1)."""

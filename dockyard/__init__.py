"""dockyard: a self-hosted OCI image registry with its own container runtime client."""

__version__ = "0.1.0"

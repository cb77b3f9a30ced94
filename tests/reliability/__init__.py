"""Hostile-input tests of issue 9: property-based tests (hypothesis) and schemathesis against the catalog API."""

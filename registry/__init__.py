"""dockyard's registry: the OCI Distribution v1.1 HTTP API over a storage driver."""

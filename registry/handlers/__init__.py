"""Thin HTTP handlers, one module per resource: parse the request, call one store method, respond."""

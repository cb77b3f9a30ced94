"""The catalog's errors: one readable line each, with the HTTP status the API and the pages answer with."""

from __future__ import annotations

__all__ = ["CatalogError", "Conflict", "Forbidden", "InvalidInput", "NotFound"]


class CatalogError(Exception):
    """Base class; ``status`` is the HTTP status, ``str(exc)`` the message shown to the user."""

    status = 500


class NotFound(CatalogError):
    """No such repository, tag, platform or path, or one the viewer may not see (never tell them apart)."""

    status = 404


class Forbidden(CatalogError):
    """The viewer sees the thing but may not change it (not signed in, or not an admin of its namespace)."""

    status = 403


class InvalidInput(CatalogError):
    """A malformed parameter or form field."""

    status = 400


class Conflict(CatalogError):
    """The change can't be made in the current state."""

    status = 409

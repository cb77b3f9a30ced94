"""The small, typed family of storage errors. Every error names the driver and the key involved."""

from __future__ import annotations


class StorageError(Exception):
    """Base of all storage errors: ``driver`` is the driver's name, ``path`` the key concerned."""

    def __init__(self, path: str, driver: str, detail: str = "") -> None:
        self.path = path
        self.driver = driver
        self.detail = detail
        super().__init__(f"{driver}: {path}: {detail or self.__class__.__name__}")


class PathNotFound(StorageError):
    """The key does not exist."""


class InvalidPath(StorageError):
    """The key does not match the key grammar (see :func:`storage.paths.check_path`)."""


class InvalidOffset(StorageError):
    """A read started past the end of the content."""


class StorageFull(StorageError):
    """The backend has no space left; nothing was written."""


class StorageUnavailable(StorageError):
    """The backend could not be reached or failed; the operation may succeed when retried."""

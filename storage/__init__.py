"""Pluggable storage drivers. They store bytes under plain ``/a/b`` keys and know nothing about OCI."""

from storage.driver import FileInfo, StorageDriver, Writer
from storage.errors import InvalidOffset, InvalidPath, PathNotFound, StorageError, StorageFull, StorageUnavailable

__all__ = [
    "FileInfo",
    "InvalidOffset",
    "InvalidPath",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Writer",
]

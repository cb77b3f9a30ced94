"""The OCI store: blobs, uploads, manifests, tags and referrers on top of one storage driver."""

from __future__ import annotations

from dataclasses import dataclass

from registry.store.blobs import BlobStore
from registry.store.manifests import ManifestStore
from registry.store.repos import RepoStore
from registry.store.uploads import UploadStore
from storage.driver import StorageDriver


@dataclass
class Store:
    """Everything the handlers call, built once per app around one (checked) driver."""

    driver: StorageDriver
    blobs: BlobStore
    uploads: UploadStore
    manifests: ManifestStore
    repos: RepoStore

    @classmethod
    def build(cls, driver: StorageDriver) -> Store:
        blobs = BlobStore(driver)
        return cls(
            driver=driver,
            blobs=blobs,
            uploads=UploadStore(driver, blobs),
            manifests=ManifestStore(driver, blobs),
            repos=RepoStore(driver),
        )

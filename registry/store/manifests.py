"""Manifests, tags and referrers of a repository.

A push validates the manifest, checks that every blob and child manifest it references is in the
repository, then writes in this order: the bytes (as a global blob), the revision link, the tag, the
referrer record. A tag therefore never points at a manifest that is not completely stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from registry.errors import ErrorCode, RegistryError
from registry.manifests import Descriptor, ParsedManifest, parse_manifest, referrer_descriptor, subject_of
from registry.reference import Digest, parse_digest
from registry.store import links
from registry.store.blobs import BlobStore
from registry.store.paths import key
from registry.store.recent import Recent
from storage.driver import StorageDriver

REVISIONS_REMEMBERED = 20_000  # media types of revision records (see ManifestStore.get)


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as served: its exact bytes, media type and digest."""

    body: bytes
    media_type: str
    digest: Digest


@dataclass(frozen=True)
class PutResult:
    """What a manifest push answers with."""

    digest: Digest
    subject: Digest | None


def _unknown(name: str, reference: str) -> RegistryError:
    return RegistryError(
        ErrorCode.MANIFEST_UNKNOWN,
        f"manifest {reference!s} unknown to repository {name}",
        {"reference": str(reference)},
    )


class ManifestStore:
    """Put, get and delete manifests; list tags and referrers."""

    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self.driver = driver
        self.blobs = blobs
        self._media_types: Recent[tuple[str, Digest], str] = Recent(REVISIONS_REMEMBERED)  # of revision records

    async def put(
        self, name: str, reference: Digest | str, body: bytes, content_type: str, tags: list[str]
    ) -> PutResult:
        """Validate and store a manifest under a digest or a tag (plus any extra ``tags``)."""
        parsed = parse_manifest(body, content_type)
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        digest = Digest.of(body, algorithm)
        if isinstance(reference, Digest) and digest != reference:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID, f"manifest digest is {digest}, not {reference}", {"actual": str(digest)}
            )
        await self._check_references(name, parsed)
        await self.blobs.put_small(body, digest)
        record = json.dumps({"digest": str(digest), "mediaType": parsed.media_type}).encode()
        await self.driver.put_content(key("revision_link", name=name, digest=digest), record)
        self._media_types.put((name, digest), parsed.media_type)
        for tag in ([reference] if isinstance(reference, str) else []) + tags:
            await self.driver.put_content(key("tag_link", name=name, tag=tag), str(digest).encode())
        subject = parsed.subject.parsed_digest() if parsed.subject else None
        if subject is not None:
            entry = json.dumps(referrer_descriptor(parsed, digest, len(body)), sort_keys=True).encode()
            await self.driver.put_content(key("referrer", name=name, digest=subject, referrer=digest), entry)
        return PutResult(digest, subject)

    async def _check_references(self, name: str, parsed: ParsedManifest) -> None:
        await self.blobs.claim(d.parsed_digest() for d in (*parsed.blobs, *parsed.children))
        for blob in parsed.blobs:
            await self._check_blob(name, blob)
        for child in parsed.children:
            if not await links.exists(self.driver, key("revision_link", name=name, digest=child.parsed_digest())):
                raise RegistryError(
                    ErrorCode.MANIFEST_BLOB_UNKNOWN,
                    f"child manifest {child.digest} is not in repository {name}",
                    {"digest": child.digest},
                )

    async def _check_blob(self, name: str, blob: Descriptor) -> None:
        digest = blob.parsed_digest()
        located = await self.blobs.linked(name, digest)
        if located is None:
            raise RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN, f"blob {digest} is not in repository {name}", {"digest": str(digest)}
            )
        if located.size != blob.size:
            raise RegistryError(
                ErrorCode.MANIFEST_INVALID,
                f"descriptor of {digest} says {blob.size} bytes, the blob has {located.size}",
                {"digest": str(digest), "size": located.size},
            )

    async def resolve(self, name: str, reference: Digest | str) -> Digest:
        """The digest a tag points to (or the digest itself), if the repository has that manifest."""
        if isinstance(reference, str):
            link = await links.read_optional(self.driver, key("tag_link", name=name, tag=reference))
            if link is None:
                raise _unknown(name, reference)
            digest = parse_digest(link.decode())
        else:
            digest = reference
        return digest

    async def get(self, name: str, reference: Digest | str) -> StoredManifest:
        """The stored manifest, or MANIFEST_UNKNOWN.

        By digest, the revision record is read every time (it is what says the repository has the manifest). By
        tag, the tag is read every time, and the revision record of a manifest this process read or wrote before
        comes from memory: a tag is written after its manifest's revision record and removed before it (a delete
        by digest drops the manifest's tags first; garbage collection deletes untagged manifests only), so a tag
        that is there names a manifest that is there; and the record (the media type) never changes."""
        digest = await self.resolve(name, reference)
        media_type = self._media_types.get((name, digest)) if isinstance(reference, str) else None
        if media_type is None:
            record = await links.read_optional(self.driver, key("revision_link", name=name, digest=digest))
            if record is None:
                raise _unknown(name, str(reference))
            media_type = str(json.loads(record)["mediaType"])
            self._media_types.put((name, digest), media_type)
        return StoredManifest(await self.blobs.read_small(digest), media_type, digest)

    async def delete(self, name: str, reference: Digest | str) -> None:
        """Untag (by tag), or delete the manifest with all its tags and its referrer record (by digest)."""
        if isinstance(reference, str):
            if not await links.delete_optional(self.driver, key("tag", name=name, tag=reference)):
                raise _unknown(name, reference)
            return
        stored = await self.get(name, reference)
        for tag in await self.tags(name):
            link = await links.read_optional(self.driver, key("tag_link", name=name, tag=tag))
            if link is not None and link.decode() == str(reference):
                await links.delete_optional(self.driver, key("tag", name=name, tag=tag))
        subject = subject_of(stored.body)
        if subject is not None:
            await links.delete_optional(self.driver, key("referrer", name=name, digest=subject, referrer=reference))
        await links.delete_optional(self.driver, key("revision", name=name, digest=reference))
        self.forget(name, reference)

    def forget(self, name: str, digest: Digest) -> None:
        """Drop what this process remembers of manifest ``digest`` of ``name`` (its revision record was deleted)."""
        self._media_types.pop((name, digest))

    async def tags(self, name: str) -> list[str]:
        """All tags of the repository, sorted lexically."""
        return sorted(await links.children(self.driver, key("tags", name=name)))

    async def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict[str, object]]:
        """Descriptors of the manifests whose ``subject`` is ``subject``, optionally of one artifact type."""
        folder = key("referrers", name=name, digest=subject)
        found: list[dict[str, object]] = []
        for entry in await links.children(self.driver, folder):
            content = await links.read_optional(self.driver, f"{folder}/{entry}")
            if content is None:
                continue
            descriptor = json.loads(content)
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.append(descriptor)
        return found

"""A synthetic catalog for the catalog benchmark: users, organizations, repositories, tags, manifests and blobs
written straight into the index tables (and the account tables) with bulk inserts.

``await fill(engine, Sizes(repositories=10_000, tags=100_000))`` on a migrated, empty database. Deterministic for a
``seed``. The shape, chosen to look like a real registry:

- ``namespaces`` namespaces, half users and half organizations; user ``bench-user`` is a member of the first
  organizations (``member_of``) so a signed-in viewer sees their private repositories;
- repositories ``<namespace>/<word>-<word>[-<n>]``; a third have an account row with a description made of words,
  ``private_fraction`` of all are private; push times spread over a year; pull counts long-tailed;
- ``tags`` tags: ``big_repository_tags`` in one repository (``Dataset.big_repository``, for deep tag pages), the
  rest spread at random; one manifest per tag (a single linux/amd64 platform) and two blobs per manifest, one of
  them a base layer shared across repositories.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.models import MembershipRow, NamespaceRow, OrganizationRow, RepositoryRow, UserRow
from catalog.models import IndexedBlobRow, IndexedManifestRow, IndexedRepositoryRow, IndexedTagRow

__all__ = ["BENCH_USER", "Dataset", "Sizes", "fill"]

BENCH_USER = "bench-user"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 5_000
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SYLLABLES = ("ng", "in", "x", "re", "dis", "po", "st", "gr", "es", "al", "py", "th", "on", "go", "ja", "va", "ku", "be")
BASE_LAYERS = 50


@dataclass(frozen=True)
class Sizes:
    repositories: int = 10_000
    tags: int = 100_000
    namespaces: int = 400
    private_fraction: float = 0.1
    big_repository_tags: int = 5_000
    member_of: int = 5


@dataclass
class Dataset:
    """What was written, for choosing what to query."""

    names: list[str] = field(default_factory=list)
    private: set[str] = field(default_factory=set)
    namespaces: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    big_repository: str = ""
    rows: int = 0

    def public_name(self) -> str:
        """A public repository from the middle of the list (not the biggest)."""
        public = [name for name in self.names[1:] if name not in self.private]
        return public[len(public) // 2]


def fill_rows(sizes: Sizes, seed: int = 1) -> tuple[Dataset, dict[type[Any], list[dict[str, Any]]]]:
    """The rows of every table, by model, and the dataset they describe."""
    rng = random.Random(seed)
    words = _words(rng, 300)
    data = Dataset(words=words)
    rows: dict[type[Any], list[dict[str, Any]]] = {}
    rows.update(_people(sizes, data))
    repositories, accounts = _repositories(rng, sizes, data)
    rows[IndexedRepositoryRow] = repositories
    rows[RepositoryRow] = accounts
    rows.update(_tags(rng, sizes, data, repositories))
    data.rows = sum(len(r) for r in rows.values())
    return data, rows


async def fill(engine: AsyncEngine, sizes: Sizes, seed: int = 1) -> Dataset:
    """Write the synthetic catalog into ``engine``'s (empty, migrated) database."""
    data, rows = fill_rows(sizes, seed)
    order = (NamespaceRow, UserRow, OrganizationRow, MembershipRow, RepositoryRow, IndexedRepositoryRow)
    order += (IndexedTagRow, IndexedManifestRow, IndexedBlobRow)
    async with engine.begin() as connection:
        for model in order:
            for chunk in _chunks(rows.get(model, [])):
                await connection.execute(insert(model), chunk)
    return data


def _words(rng: random.Random, count: int) -> list[str]:
    found: set[str] = set()
    while len(found) < count:
        found.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(found)


def _people(sizes: Sizes, data: Dataset) -> dict[type[Any], list[dict[str, Any]]]:
    users = [f"user{i}" for i in range(sizes.namespaces // 2)] + [BENCH_USER]
    orgs = [f"org{i}" for i in range(sizes.namespaces - sizes.namespaces // 2)]
    data.namespaces = users[:-1] + orgs
    member = orgs[: sizes.member_of]
    return {
        NamespaceRow: [{"name": u, "kind": "user"} for u in users] + [{"name": o, "kind": "org"} for o in orgs],
        UserRow: [
            {"name": u, "password_hash": "$2b$04$" + "x" * 53, "is_admin": False, "created_at": NOW} for u in users
        ],
        OrganizationRow: [{"name": o, "created_at": NOW} for o in orgs],
        MembershipRow: [{"org_name": o, "user_name": BENCH_USER, "role": "read"} for o in member],
    }


def _repositories(rng: random.Random, sizes: Sizes, data: Dataset) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    repositories: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i in range(sizes.repositories):
        namespace = data.namespaces[i % len(data.namespaces)]
        name = f"{namespace}/{rng.choice(data.words)}-{rng.choice(data.words)}"
        name = name if name not in taken else f"{name}-{i}"
        taken.add(name)
        pushed = NOW - timedelta(seconds=rng.randint(0, 365 * 86_400))
        pulls = int(rng.paretovariate(1.2)) - 1
        repositories.append(_repository(name, namespace, pushed, pulls))
        private = i > 0 and rng.random() < sizes.private_fraction  # the first (the biggest) stays public
        if private or i % 3 == 0:
            description = " ".join(rng.choice(data.words) for _ in range(rng.randint(5, 40)))
            visibility = "private" if private else "public"
            if private:
                data.private.add(name)
            accounts.append(
                {
                    "name": name,
                    "namespace": namespace,
                    "visibility": visibility,
                    "description": description,
                    "created_at": NOW,
                }
            )
    data.names = [r["name"] for r in repositories]
    return repositories, accounts


def _repository(name: str, namespace: str, pushed: datetime, pulls: int) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "created_at": pushed - timedelta(days=30),
        "pushed_at": pushed,
        "tag_count": 0,
        "size": 0,
        "pull_count": pulls,
        "last_pull_at": pushed if pulls else None,
    }


def _tags(
    rng: random.Random, sizes: Sizes, data: Dataset, repositories: Sequence[dict[str, Any]]
) -> dict[type[Any], list[dict[str, Any]]]:
    big = repositories[0]
    data.big_repository = big["name"]
    owners = [big] * min(sizes.big_repository_tags, sizes.tags)
    owners += [rng.choice(repositories) for _ in range(sizes.tags - len(owners))]
    tags, manifests, blobs = [], [], []
    for i, owner in enumerate(owners):
        digest = f"sha256:{i:064x}"
        pushed = owner["pushed_at"] - timedelta(seconds=owner["tag_count"] * 3600)
        layer, base = f"sha256:{'a' * 16}{i:048x}", f"sha256:{'b' * 16}{i % BASE_LAYERS:048x}"
        size = rng.randint(1 << 20, 200 << 20)
        owner["tag_count"] += 1
        owner["size"] += size
        tags.append(_tag(owner["name"], f"v{owner['tag_count']}", digest, pushed))
        manifests.append(_manifest(owner["name"], digest, size, pushed))
        blobs.append({"repository": owner["name"], "manifest": digest, "digest": layer, "size": size - 1000})
        blobs.append({"repository": owner["name"], "manifest": digest, "digest": base, "size": 1000})
    return {IndexedTagRow: tags, IndexedManifestRow: manifests, IndexedBlobRow: _distinct(blobs)}


def _tag(repository: str, name: str, digest: str, pushed: datetime) -> dict[str, Any]:
    return {"repository": repository, "name": name, "digest": digest, "pushed_at": pushed, "last_pull_at": None}


def _manifest(repository: str, digest: str, size: int, pushed: datetime) -> dict[str, Any]:
    platform = {"os": "linux", "architecture": "amd64", "variant": None, "digest": digest, "size": size}
    return {
        "repository": repository,
        "digest": digest,
        "media_type": MANIFEST,
        "artifact_type": None,
        "subject": None,
        "size": size,
        "platforms": [platform],
        "config": {},
        "pushed_at": pushed,
    }


def _distinct(blobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for blob in blobs:
        seen.setdefault((blob["repository"], blob["manifest"], blob["digest"]), blob)
    return list(seen.values())


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]

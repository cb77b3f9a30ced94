"""Rows that move blob bytes: monolithic and chunked uploads, downloads with a cold and a warm page cache.

Every upload round pushes a blob neither registry has yet (the first 32 bytes change each round, so nothing is
deduplicated), into a repository of its own row. Throughputs are MB/s (10^6 bytes/s) over the whole sequence of
requests, connection setup included.

Ceilings (:mod:`.targets`): the cold download row (kind ``cold-download``) is bounded by a cold read of the disk,
and the monolithic rows with the SHA-256 target by a durable write (write + fsync) of their size, both measured
with the limits (:mod:`.limits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bench.s3_push_pull import BlobFile, refresh_blob, write_random_blob
from bench.sidebyside.blobs import chunked_upload, download, drop_page_cache, monolithic_upload, verify_blob
from bench.sidebyside.plan import GiB, Plan, human_size
from bench.sidebyside.runner import Measurement, Row, run_row
from bench.sidebyside.servers import Registry

DOWNLOAD_REPO = "bench/download"


def _refresher(blob: BlobFile) -> Callable[[int], None]:
    """A ``before_round`` that gives every round after the first a blob no registry has yet."""

    def before_round(round_index: int) -> None:
        if round_index:
            refresh_blob(blob)

    return before_round


def monolithic_row(registries: Sequence[Registry], workdir: Path, size: int, rounds: int, sha_target: bool) -> Row:
    """POST + one PUT with the whole blob; kind ``monolithic-sha`` when the SHA-256 target applies to this
    size (plus the RSS target at 1 GiB; the durable write of ``size`` bounds it)."""
    blob = write_random_blob(workdir / f"upload-{size}", size)
    repo = f"bench/upload-{size}"

    def workload(registry: Registry, _round: int) -> Measurement:
        return Measurement(size / 1e6 / monolithic_upload(registry, repo, blob))

    try:
        name = f"monolithic upload {human_size(size)}"
        row = run_row(name, "MB/s", True, registries, rounds, workload, _refresher(blob))
    finally:
        blob.path.unlink()
    row.size = size
    if sha_target:
        row.kind = "monolithic-sha-rss" if size >= GiB else "monolithic-sha"
    return row


def chunked_row(registries: Sequence[Registry], workdir: Path, size: int, chunk: int, rounds: int) -> Row:
    """POST, PATCH per ``chunk`` with Content-Range, PUT ?digest=."""
    blob = write_random_blob(workdir / f"chunked-{size}", size)
    repo = "bench/chunked"

    def workload(registry: Registry, _round: int) -> Measurement:
        return Measurement(size / 1e6 / chunked_upload(registry, repo, blob, chunk))

    name = f"chunked upload {human_size(size)} in {human_size(chunk)} chunks"
    try:
        return run_row(name, "MB/s", True, registries, rounds, workload, _refresher(blob))
    finally:
        blob.path.unlink()


def _drop_cache(registry: Registry) -> None:
    assert registry.storage is not None
    drop_page_cache(registry.storage)


def download_rows(registries: Sequence[Registry], workdir: Path, size: int, rounds: int) -> list[Row]:
    """One blob pushed to both, its digest checked once (untimed), then GETs: cold (every blob file of the
    server's storage written back and evicted with ``posix_fadvise(DONTNEED)`` before each GET; filesystem only)
    and warm (in the page cache). The cold row's kind is ``cold-download`` (a cold read of the disk bounds it)."""
    blob = write_random_blob(workdir / "download", size)
    try:
        for registry in registries:
            monolithic_upload(registry, DOWNLOAD_REPO, blob)
            verify_blob(registry, DOWNLOAD_REPO, blob)
    finally:
        blob.path.unlink()

    def workload(registry: Registry, _round: int) -> Measurement:
        return Measurement(size / 1e6 / download(registry, DOWNLOAD_REPO, blob))

    rows = []
    label = human_size(size)
    if all(registry.storage is not None for registry in registries):
        cold = run_row(
            f"blob download {label}, cold cache", "MB/s", True, registries, rounds, workload, None, _drop_cache
        )
        cold.kind = "cold-download"
        rows.append(cold)
    warm = run_row(f"blob download {label}, warm cache", "MB/s", True, registries, rounds, workload)
    warm.kind = "warm-download"
    return [*rows, warm]


def rows(registries: Sequence[Registry], plan: Plan, workdir: Path, groups: set[str]) -> list[Row]:
    """The blob rows of ``plan`` whose group (``upload``, ``chunked``, ``download``) is selected."""
    result: list[Row] = []
    if "upload" in groups:
        for size, rounds in plan.monolithic:
            result.append(monolithic_row(registries, workdir, size, rounds, plan.has_sha_target(size)))
    if "chunked" in groups:
        result.append(chunked_row(registries, workdir, plan.chunked_size, plan.chunk_size, plan.chunked_rounds))
    if "download" in groups:
        result.extend(download_rows(registries, workdir, plan.download_size, plan.download_rounds))
    return result

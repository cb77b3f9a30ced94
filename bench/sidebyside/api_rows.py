"""Rows of small requests: manifest GET and HEAD under load, the tags list of a big repository, the catalog.

Population goes through the API on both registries the same way, with ``plan.populate_concurrency`` concurrent
requests: one small image, then its manifest PUT under ``plan.tags`` tags; and for the catalog, per repository,
two cross-repository blob mounts and a manifest PUT. Listings follow ``Link`` headers (``_catalog`` asks for
``n=1000`` per page, the most Distribution 2.8.2 allows by default) and are checked for their length; their
latency is the time of every page.

Scale: before the population grows past :data:`~bench.sidebyside.plan.SCALE_SMALL` entries, the first page of
``SCALE_SMALL`` entries is timed; the same page is timed again on the full population (kind ``scale``: it must stay
flat, see :mod:`.targets`). A page's time in a round is the median of :data:`PAGE_REQUESTS` fetches.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bench.s3_push_pull import BenchError
from bench.sidebyside.api import OCI_MANIFEST, Api, SmallImage, digest_of, for_each
from bench.sidebyside.load import run_load
from bench.sidebyside.plan import SCALE_SMALL, Plan
from bench.sidebyside.runner import Measurement, Row, Workload, run_row
from bench.sidebyside.servers import Registry

MANIFEST_REPO, TAGS_REPO, CATALOG_BASE = "bench/manifest", "bench/tags", "bench/catalog-base"
PAGE_REQUESTS = 20
"""Fetches of a page per round: a single ~1 ms request after the pause between rounds measures the machine waking
up (about 1 ms here, for either server) more than the server's answer."""
ACCEPT = {"Accept": f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"}


def _populate(registry: Registry, what: str, count: int, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (which writes ``count`` ``what`` into ``registry``) and print its rate (untimed in rows)."""
    start = time.perf_counter()
    asyncio.run(work)
    seconds = time.perf_counter() - start
    print(f"  populated {registry.name}: {count:,} {what} in {seconds:.1f}s ({count / seconds:.0f}/s)", flush=True)


def _manifest_load(method: str, concurrency: int, seconds: float) -> Workload:
    def workload(registry: Registry, _round: int) -> Measurement:
        url = f"{registry.url}/v2/{MANIFEST_REPO}/manifests/latest"
        result = run_load(method, url, ACCEPT, concurrency, seconds)
        return Measurement(result.per_second, result.latencies)

    return workload


def manifest_rows(registries: Sequence[Registry], plan: Plan) -> list[Row]:
    """GET and HEAD of ``bench/manifest:latest`` at each concurrency, for ``plan.load_seconds`` per round."""
    image = SmallImage.make("manifest")

    async def push(registry: Registry) -> None:
        async with Api(registry) as api:
            await api.push_image(MANIFEST_REPO, "latest", image)

    for registry in registries:
        asyncio.run(push(registry))
    rows = []
    for method in ("GET", "HEAD"):
        for concurrency in plan.load_concurrency:
            name = f"manifest {method} by tag, {concurrency} connections"
            workload = _manifest_load(method, concurrency, plan.load_seconds)
            rows.append(run_row(name, "req/s", True, registries, plan.load_rounds, workload))
    return rows


def _list_ms(registry: Registry, path: str, key: str, expected: int, *, follow: bool = True) -> float:
    """Fetch every page of a listing (only the first unless ``follow``) on one connection (opened untimed); the
    milliseconds; at least ``expected`` entries or :class:`BenchError`."""
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=600)
    conn.connect()
    entries = 0
    try:
        start = time.perf_counter()
        next_path: str | None = path
        while next_path:
            conn.request("GET", next_path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise BenchError(f"{registry.name}: GET {next_path} answered {response.status}")
            entries += len(json.loads(body)[key] or [])
            link = response.getheader("Link")
            next_path = link.split(";")[0].strip(" <>") if link and follow else None
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    if entries < expected:
        raise BenchError(f"{registry.name}: {path} listed {entries} entries, expected {expected}")
    return elapsed * 1e3


def _page_workload(path: str, key: str) -> Workload:
    """A round's value: the median of :data:`PAGE_REQUESTS` fetches of the page, each on a connection of its own."""

    def workload(registry: Registry, _round: int) -> Measurement:
        samples = [_list_ms(registry, path, key, SCALE_SMALL, follow=False) for _ in range(PAGE_REQUESTS)]
        return Measurement(statistics.median(samples), [ms / 1e3 for ms in samples])

    return workload


def _scale_rows(
    registries: Sequence[Registry], plan: Plan, what: str, total: int, path: str, key: str, grow: Callable[[], None]
) -> list[Row]:
    """The first page of ``SCALE_SMALL`` ``what`` timed on ``SCALE_SMALL`` entries, then ``grow()`` (to ``total``),
    then the same page again (kind ``scale``, against the first)."""
    page = f"{path}{'&' if '?' in path else '?'}n={SCALE_SMALL}"
    small = run_row(
        f"{what} page of {SCALE_SMALL}, {SCALE_SMALL} {what}",
        "ms",
        False,
        registries,
        plan.listing_rounds,
        _page_workload(page, key),
    )
    grow()
    large = run_row(
        f"{what} page of {SCALE_SMALL}, {total:,} {what}",
        "ms",
        False,
        registries,
        plan.listing_rounds,
        _page_workload(page, key),
    )
    large.kind, large.baseline = "scale", small.sides["dockyard"].median()
    return [small, large]


def tags_rows(registries: Sequence[Registry], plan: Plan) -> list[Row]:
    """``GET /v2/bench/tags/tags/list`` of a repository with ``plan.tags`` tags, and the scale rows of its first
    page (at ``SCALE_SMALL`` and at ``plan.tags`` tags)."""
    image = SmallImage.make("tags")

    async def populate(registry: Registry, first: int, last: int) -> None:
        async with Api(registry, plan.populate_concurrency) as api:
            if first == 0:
                await api.push_image(TAGS_REPO, "t00000", image)
                first = 1
            await for_each(
                last - first,
                plan.populate_concurrency,
                lambda i: api.put_manifest(TAGS_REPO, f"t{first + i:05d}", image.manifest),
            )

    for registry in registries:
        _populate(registry, "tags", SCALE_SMALL, populate(registry, 0, SCALE_SMALL))

    def grow() -> None:
        for registry in registries:
            _populate(registry, "tags", plan.tags - SCALE_SMALL, populate(registry, SCALE_SMALL, plan.tags))

    rows = _scale_rows(registries, plan, "tags", plan.tags, f"/v2/{TAGS_REPO}/tags/list", "tags", grow)

    def workload(registry: Registry, _round: int) -> Measurement:
        return Measurement(_list_ms(registry, f"/v2/{TAGS_REPO}/tags/list", "tags", plan.tags))

    full = run_row(f"tags list, {plan.tags:,} tags", "ms", False, registries, plan.listing_rounds, workload)
    return [full, *rows]


def catalog_rows(registries: Sequence[Registry], plan: Plan) -> list[Row]:
    """``GET /v2/_catalog?n=1000``, every page, after adding ``plan.repositories`` repositories (Distribution
    2.8.2 answers 400 to an ``n`` above its ``catalog.maxentries``, 1000 by default); and the scale rows of its
    first page (at ``SCALE_SMALL`` and at ``plan.repositories`` repositories)."""
    image = SmallImage.make("catalog")

    async def populate(registry: Registry, first: int, last: int) -> None:
        async with Api(registry, plan.populate_concurrency) as api:
            if first == 0:
                await api.push_image(CATALOG_BASE, "latest", image)

            async def one(index: int) -> None:
                repo = f"catalog/r{first + index:05d}"
                for blob in image.blobs:
                    await api.mount_blob(repo, digest_of(blob), CATALOG_BASE)
                await api.put_manifest(repo, "latest", image.manifest)

            await for_each(last - first, plan.populate_concurrency, one)

    for registry in registries:
        _populate(registry, "repositories", SCALE_SMALL, populate(registry, 0, SCALE_SMALL))

    def grow() -> None:
        for registry in registries:
            count = plan.repositories - SCALE_SMALL
            _populate(registry, "repositories", count, populate(registry, SCALE_SMALL, plan.repositories))

    rows = _scale_rows(registries, plan, "repositories", plan.repositories, "/v2/_catalog", "repositories", grow)

    def workload(registry: Registry, _round: int) -> Measurement:
        return Measurement(_list_ms(registry, "/v2/_catalog?n=1000", "repositories", plan.repositories))

    name = f"catalog, {plan.repositories:,}+ repositories"
    return [run_row(name, "ms", False, registries, plan.listing_rounds, workload), *rows]


def rows(registries: Sequence[Registry], plan: Plan, groups: set[str]) -> list[Row]:
    """The request rows of ``plan`` whose group (``manifest``, ``tags``, ``catalog``) is selected."""
    result: list[Row] = []
    if "manifest" in groups:
        result.extend(manifest_rows(registries, plan))
    if "tags" in groups:
        result.extend(tags_rows(registries, plan))
    if "catalog" in groups:
        result.extend(catalog_rows(registries, plan))
    return result

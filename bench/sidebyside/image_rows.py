"""Whole-image rows: ``skopeo copy`` of a many-layer image (push, then pull), and many small images pushed by
concurrent clients.

skopeo runs with the private configuration of ``tests/support/clients.py`` (its own policy, no system state);
every round builds a new image of random layers (OCI layout under the work dir), so neither registry can
deduplicate (dockyard mounts a blob it already has when a POST names none). The small images are pushed the way
a client does (HEAD each blob, POST, PUT ?digest=, then the manifest) by ``plan.small_image_clients`` concurrent
aiohttp clients, each image a new random layer and config.

The skopeo rows have no ceiling: skopeo 1.9 reads an ``oci:`` layout one blob at a time (containers/image: its oci
source has no thread-safe GetBlob) but fetches a registry's layers in parallel, so its own ``oci:`` to ``oci:`` copy
(no registry) came out slower than a pull from either registry and bounds nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.s3_push_pull import BenchError
from bench.sidebyside.api import Api, SmallImage, for_each
from bench.sidebyside.plan import Plan, human_size
from bench.sidebyside.runner import Measurement, Row, run_row
from bench.sidebyside.servers import Registry
from tests.support.clients import Skopeo, ToolHome
from tests.support.images import Image, ImageFactory, image_config


def _skopeo(workdir: Path) -> tuple[Skopeo, ToolHome]:
    binary = shutil.which("skopeo")
    if binary is None:
        raise BenchError("skopeo not found (make bench installs it: scripts/install-system-deps.sh)")
    home = ToolHome(workdir / "skopeo-home")
    return Skopeo(home, binary=binary), home


def skopeo_rows(registries: Sequence[Registry], plan: Plan, workdir: Path) -> list[Row]:
    """``skopeo copy oci:... docker://...`` of a fresh image per round, then ``docker://... oci:NEWDIR`` of it."""
    skopeo, home = _skopeo(workdir)
    factory = ImageFactory(workdir / "oci-images")
    images: dict[int, Image] = {}
    run_id = uuid.uuid4().hex[:8]

    def build(round_index: int) -> None:
        layers = [
            factory.random_layer(plan.skopeo_layer_size, f"{run_id}-{round_index}-{i}")
            for i in range(plan.skopeo_layers)
        ]
        images[round_index] = factory.add_image(f"r{round_index}", layers, image_config(layers, "amd64"))

    def push(registry: Registry, round_index: int) -> Measurement:
        start = time.perf_counter()
        skopeo.copy(images[round_index].oci_ref, f"docker://{registry.host}/bench/skopeo-{round_index}:latest")
        return Measurement(time.perf_counter() - start)

    def pull(registry: Registry, round_index: int) -> Measurement:
        target = workdir / f"pulled-{registry.name}-{round_index}"
        start = time.perf_counter()
        skopeo.copy(f"docker://{registry.host}/bench/skopeo-{round_index}:latest", f"oci:{target}:latest")
        seconds = time.perf_counter() - start
        shutil.rmtree(target)
        return Measurement(seconds)

    label = f"{plan.skopeo_layers} x {human_size(plan.skopeo_layer_size)} layers"
    try:
        return [
            run_row(f"skopeo copy push, {label}", "s", False, registries, plan.skopeo_rounds, push, build),
            run_row(f"skopeo copy pull, {label}", "s", False, registries, plan.skopeo_rounds, pull),
        ]
    finally:
        home.cleanup()


def small_images_row(registries: Sequence[Registry], plan: Plan) -> Row:
    """``plan.small_images`` images in ``plan.small_image_rounds`` rounds, ``plan.small_image_clients`` at a time,
    into one repository per client; images/s, and each image's push latency."""
    per_round = plan.small_images // plan.small_image_rounds
    clients = plan.small_image_clients
    batch: list[SmallImage] = []

    def make_batch(round_index: int) -> None:
        batch[:] = [SmallImage.make(f"small-{round_index}-{i}") for i in range(per_round)]

    async def push_all(registry: Registry, round_index: int) -> list[float]:
        latencies: list[float] = []
        async with Api(registry, clients) as api:

            async def one(index: int) -> None:
                start = time.perf_counter()
                repo, tag = f"bench/small-{index % clients:02d}", f"r{round_index}-{index}"
                await api.push_image(repo, tag, batch[index], check_first=True)
                latencies.append(time.perf_counter() - start)

            await for_each(per_round, clients, one)
        return latencies

    def workload(registry: Registry, round_index: int) -> Measurement:
        start = time.perf_counter()
        latencies = asyncio.run(push_all(registry, round_index))
        return Measurement(per_round / (time.perf_counter() - start), latencies)

    name = f"{per_round * plan.small_image_rounds:,} small images, {clients} clients"
    return run_row(name, "images/s", True, registries, plan.small_image_rounds, workload, make_batch)


def rows(registries: Sequence[Registry], plan: Plan, workdir: Path, groups: set[str]) -> list[Row]:
    """The image rows of ``plan`` whose group (``skopeo``, ``small``) is selected."""
    result: list[Row] = []
    if "skopeo" in groups:
        result.extend(skopeo_rows(registries, plan, workdir))
    if "small" in groups:
        result.append(small_images_row(registries, plan))
    return result

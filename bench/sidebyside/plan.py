"""What a run measures: sizes, counts, rounds and durations of a full run and of ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30
SCALE_SMALL = 100  # the small population of the scale rows (tags, repositories), and their page size


@dataclass(frozen=True)
class Plan:
    """The knobs of one run. ``rounds`` count samples per server (each round runs both servers once)."""

    monolithic: tuple[tuple[int, int], ...]  # (blob size, rounds)
    sha_target_min_size: int  # monolithic rows at least this big also have the 60%-of-SHA-256 target
    chunked_size: int
    chunk_size: int
    chunked_rounds: int
    download_size: int
    download_rounds: int
    load_concurrency: tuple[int, ...]
    load_seconds: float
    load_rounds: int
    tags: int
    repositories: int
    listing_rounds: int
    skopeo_layers: int
    skopeo_layer_size: int
    skopeo_rounds: int
    small_images: int
    small_image_clients: int
    small_image_rounds: int
    populate_concurrency: int
    sha_buffer: int
    sendfile_size: int

    def has_sha_target(self, size: int) -> bool:
        """Whether a monolithic upload of ``size`` bytes also has the 60%-of-SHA-256 target (and so a durable-write
        ceiling)."""
        return size >= self.sha_target_min_size


FULL = Plan(
    monolithic=((MiB, 60), (100 * MiB, 5), (GiB, 2)),
    sha_target_min_size=100 * MiB,
    chunked_size=100 * MiB,
    chunk_size=5 * MiB,
    chunked_rounds=4,
    download_size=100 * MiB,
    download_rounds=15,
    load_concurrency=(1, 32, 128),
    load_seconds=2.0,
    load_rounds=3,
    tags=10_000,
    repositories=10_000,
    listing_rounds=10,
    skopeo_layers=10,
    skopeo_layer_size=10 * MiB,
    skopeo_rounds=3,
    small_images=1_000,
    small_image_clients=32,
    small_image_rounds=4,
    populate_concurrency=32,
    sha_buffer=256 * MiB,
    sendfile_size=256 * MiB,
)

QUICK = Plan(
    monolithic=((MiB, 5), (20 * MiB, 2)),
    sha_target_min_size=20 * MiB,
    chunked_size=100 * MiB,
    chunk_size=5 * MiB,
    chunked_rounds=1,
    download_size=20 * MiB,
    download_rounds=2,
    load_concurrency=(1, 32, 128),
    load_seconds=0.4,
    load_rounds=1,
    tags=300,
    repositories=500,
    listing_rounds=3,
    skopeo_layers=3,
    skopeo_layer_size=2 * MiB,
    skopeo_rounds=1,
    small_images=100,
    small_image_clients=32,
    small_image_rounds=2,
    populate_concurrency=32,
    sha_buffer=64 * MiB,
    sendfile_size=64 * MiB,
)


def human_size(size: int) -> str:
    """1048576 -> ``1 MiB``; 1073741824 -> ``1 GiB``."""
    if size % GiB == 0:
        return f"{size // GiB} GiB"
    if size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size} B"

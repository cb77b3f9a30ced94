"""Pushes and pulls kept running (in threads) against a live registry while a fault test breaks what it stands on.

Each worker loops until told to stop: push a new image (its small layer monolithic, its big layer in chunks, then
the manifest), pull it back, pull the seed images. On any failed request it starts that image over (what docker does
with a failed blob upload), waiting as ``Retry-After`` asks (capped, to keep the test short). After :meth:`Traffic.stop`
each worker still finishes the image it is on, so every worker ends with a push acknowledged after the fault.
Every request's :class:`~tests.reliability.outage_client.Answer` is kept for the test to judge.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.reliability.outage_client import Answer, Image, RegistryClient, make_image, pulled_intact, sha256

RETRY_WAIT_CAP = 0.5
FINISH_DEADLINE = 60.0  # seconds a worker has, once stopped, to get its last image acknowledged


@dataclass
class Worker:
    """One client's loop; ``acked`` holds the images whose manifest PUT answered 201."""

    client: RegistryClient
    rng: random.Random
    seeds: list[Image]
    chunk: int
    layer_sizes: tuple[int, int]
    acked: list[Image] = field(default_factory=list)
    corrupt: int = 0  # a 200 whose bytes were not the pushed ones
    failed_last: bool = False  # still had no acknowledged push when the finish deadline passed

    def run(self, name: str, stop: threading.Event) -> None:
        serial = 0
        finish_by: float | None = None
        while True:
            if stop.is_set() and finish_by is None:
                finish_by = time.monotonic() + FINISH_DEADLINE
            if finish_by is not None and time.monotonic() > finish_by:
                self.failed_last = True
                return
            image = make_image(name, f"t{serial}", self.layer_sizes, self.rng.randbytes)
            if self.push(image):
                self.acked.append(image)
                serial += 1
                self.check_pulls(image)
                if finish_by is not None:
                    return

    def push(self, image: Image) -> bool:
        small, big = image.layers
        steps: tuple[Callable[[], Answer], ...] = (
            lambda: self.client.push_blob(image.repo, image.config),
            lambda: self.client.push_blob(image.repo, small),
            lambda: self.client.push_blob_chunked(image.repo, big, self.chunk),
            lambda: self.client.put_manifest(image.repo, image.tag, image.manifest),
        )
        for step in steps:
            answer = step()
            if answer.status != 201:
                self.wait(answer)
                return False
        return True

    def check_pulls(self, image: Image) -> None:
        """Pull the new image and the seeds; count bytes that came back wrong (a failed pull is just retried)."""
        for wanted in (image, *self.seeds):
            manifest = self.client.get_manifest(wanted.repo, wanted.tag)
            if manifest.status == 200 and manifest.body != wanted.manifest:
                self.corrupt += 1
            for blob in wanted.blobs if manifest.status == 200 else ():
                answer = self.client.get_blob(wanted.repo, sha256(blob))
                self.corrupt += answer.status == 200 and answer.body != blob

    @staticmethod
    def wait(answer: Answer) -> None:
        try:
            asked = float(answer.retry_after or 0)
        except ValueError:
            asked = 0.0
        time.sleep(min(max(asked, 0.1), RETRY_WAIT_CAP))


@dataclass
class Traffic:
    """``count`` workers against ``url``, each pushing to its own repository ``traffic/w<i>``."""

    url: str
    seeds: list[Image]
    count: int
    chunk: int = 2 << 20
    layer_sizes: tuple[int, int] = (32 << 10, 6 << 20)
    workers: list[Worker] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.count):
            worker = Worker(RegistryClient(self.url), random.Random(index), self.seeds, self.chunk, self.layer_sizes)
            thread = threading.Thread(target=worker.run, args=(f"traffic/w{index}", self._stop), daemon=True)
            self.workers.append(worker)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Ask every worker to finish its current image, and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(FINISH_DEADLINE + 30)
        assert not any(thread.is_alive() for thread in self._threads), "a worker is stuck"

    def answers(self) -> Iterator[Answer]:
        for worker in self.workers:
            yield from worker.client.answers

    @property
    def acked(self) -> list[Image]:
        return [image for worker in self.workers for image in worker.acked]

    @property
    def corrupt(self) -> int:
        return sum(worker.corrupt for worker in self.workers)


def pulled_intact_count(client: RegistryClient, images: list[Image]) -> int:
    """How many of ``images`` pull back byte-identical."""
    return sum(pulled_intact(client, image) for image in images)

"""Storage and database outages (issue 9), against real processes: a ``dockyard serve`` on S3 with its own moto
server, and a ``dockyard serve`` in token mode on its own PostgreSQL.

S3: workers push and pull (``outage_load.Traffic``) while the test kills the moto server (SIGKILL; it comes back
empty on the same port, as a replaced S3 endpoint would) or freezes it (SIGSTOP: connections open, nothing answers;
SIGCONT brings it back with its data). Requests sent while S3 is away must get a retryable answer — 503 with
``Retry-After`` and the spec's JSON body — within seconds, never hang; afterwards the same registry process (never
restarted) takes every worker's push again, and after a freeze every image acknowledged before, during or after it
pulls back byte-identical.

PostgreSQL: the account database of token mode is stopped (``pg_ctl stop -m immediate``) and started again.
Anonymous pulls of a public image either keep working or fail fast with a 503; once PostgreSQL is back, the same
registry process serves logins, pulls and a new push, with accounts, repositories and tags intact.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.reliability.outage_client import Answer, Image, RegistryClient, make_image, pulled_intact, push_image, sha256
from tests.reliability.outage_load import Traffic, pulled_intact_count
from tests.reliability.tally import Tally, scaled
from tests.support.postgres import (
    PostgresCluster,
    create_durable_database,
    postgres_cluster,
    start_again,
    stop_immediately,
)
from tests.support.s3 import MotoProcess, restartable_moto
from tests.support.server import LiveRegistry, live_registry, run_dockyard

HANG_BOUND = 20.0  # seconds: an answer slower than this is a hang (S3 timeouts below make 503s come in ~5 s)
WORKERS = 2
RUN_BEFORE = 1.0  # seconds of traffic before each outage (after it, each worker pushes once more, then stops)
KILLED_FOR = 3.0
# Short S3 timeouts for the freeze (a hung endpoint is noticed after max_attempts * read_timeout, or assemble_timeout
# while it completes a multipart upload, plus backoff, plus up to 1 s per try of a PUT that waits for "100 Continue":
# ~5.5 s here), and a freeze long enough for calls to time out in it; the kill test runs with the defaults (a refused
# connection is noticed at once).
FROZEN_TIMEOUTS = {"connect_timeout": 1, "read_timeout": 1.5, "assemble_timeout": 1.5, "max_attempts": 2}
FROZEN_FOR = 7.0


@dataclass
class S3Registry:
    moto: MotoProcess
    bucket: str
    registry: LiveRegistry
    seeds: list[Image]

    def client(self) -> RegistryClient:
        return RegistryClient(self.registry.url)


@contextmanager
def s3_registry(workdir: Path, **s3_settings: object) -> Iterator[S3Registry]:
    """moto, a bucket, a registry on it (5 MiB parts, so the big layers go multipart) and two seed images."""
    with restartable_moto(workdir) as moto:
        bucket = moto.server.new_bucket()
        env = moto.server.registry_env(bucket, multipart_chunk_size=5 << 20, **s3_settings)
        with live_registry(workdir, env=env) as registry:
            rng = random.Random(1)
            seeds = [make_image("seed/app", f"v{i}", (16 << 10, 64 << 10), rng.randbytes) for i in range(2)]
            client = RegistryClient(registry.url)
            assert all(push_image(client, seed).status == 201 for seed in seeds)
            yield S3Registry(moto, bucket, registry, seeds)


@dataclass
class Verdict:
    """The failed answers to requests under way while the backend was away, sorted."""

    during: int = 0
    retryable: int = 0
    cut: int = 0  # the connection dropped mid-response (a body already streaming when S3 died)
    non_retryable: int = 0
    hangs: int = 0
    slowest_ms: int = 0
    examples: list[str] = field(default_factory=list)  # the non-retryable answers, as evidence
    met: list[str] = field(default_factory=list)  # every request under way during an outage, and its answer

    def tally_fields(self) -> dict[str, int]:
        """The counts as the report's columns name them."""
        return {
            "requests_during_outage": self.during,
            "retryable_503": self.retryable,
            "streams_cut": self.cut,
            "non_retryable": self.non_retryable,
            "hangs": self.hangs,
            "slowest_error_ms": self.slowest_ms,
        }


def judge(answers: list[Answer], windows: list[tuple[float, float]]) -> Verdict:
    """Sort every answer: hangs anywhere; among the failed requests that were under way during an outage window,
    those retryable (503 + ``Retry-After`` + JSON body), connections cut, and anything else (non-retryable)."""
    verdict = Verdict(hangs=sum(answer.seconds > HANG_BOUND for answer in answers))
    for answer in answers:
        if not any(answer.sent < end and answer.sent + answer.seconds > start for start, end in windows):
            continue
        verdict.met.append(f"{answer.request} {answer.status} in {answer.seconds:.1f} s")
        if answer.ok:
            continue
        verdict.during += 1
        verdict.slowest_ms = max(verdict.slowest_ms, int(answer.seconds * 1000))
        if answer.retryable:
            verdict.retryable += 1
        elif answer.status == 0 and "timed out" not in answer.error:
            verdict.cut += 1
        else:
            verdict.non_retryable += 1
            verdict.examples.append(
                f"{answer.request}: {answer.status} {answer.code} {answer.error} {answer.body[:200]!r}"
            )
    return verdict


def run_through_outages(
    traffic: Traffic, outages: int, seconds: float, break_: Callable[[], None], mend: Callable[[], None]
) -> list[tuple[float, float]]:
    """Traffic, then ``outages`` times: break the backend for ``seconds`` and mend it; returns the outage windows
    (from the break until the backend is back)."""
    windows = []
    traffic.start()
    for _ in range(outages):
        time.sleep(RUN_BEFORE)
        started = time.monotonic()
        break_()
        time.sleep(seconds)
        mend()
        windows.append((started, time.monotonic()))
    traffic.stop()
    return windows


def kept_serving(registry: LiveRegistry, pid: int, traffic: Traffic) -> bool:
    """The registry's process ``pid`` still runs (never restarted) and every worker's last request succeeded."""
    return (
        registry.process.poll() is None
        and registry.process.pid == pid
        and not any(worker.failed_last for worker in traffic.workers)
    )


def test_s3_killed_during_pushes_and_pulls(tmp_path: Path, tally: Tally) -> None:
    outages = scaled(1, 4)
    with s3_registry(tmp_path) as s3:
        pid = s3.registry.process.pid
        traffic = Traffic(s3.registry.url, s3.seeds, WORKERS)

        def restart_empty() -> None:
            s3.moto.start()
            s3.moto.server.client().create_bucket(Bucket=s3.bucket)  # moto lost everything with its process

        windows = run_through_outages(traffic, outages, KILLED_FOR, s3.moto.kill, restart_empty)
        verdict = judge(list(traffic.answers()), windows)
        after = [worker.acked[-1] for worker in traffic.workers if worker.acked]
        intact_after = pulled_intact_count(s3.client(), after)
        recovered = int(kept_serving(s3.registry, pid, traffic) and intact_after == WORKERS)
    tally.record(
        "Faults",
        "S3 server killed during pushes and pulls (restarted empty)",
        tried=outages,
        **verdict.tally_fields(),
        corrupt_served=traffic.corrupt,
        recovered_without_restart=recovered,
    )
    assert verdict.during > 0, f"no request failed during the outage: the test tried nothing; {verdict.met}"
    assert (verdict.non_retryable, verdict.hangs, traffic.corrupt, recovered) == (0, 0, 0, 1), verdict


def test_s3_frozen_during_pushes_and_pulls(tmp_path: Path, tally: Tally) -> None:
    outages = scaled(1, 4)
    with s3_registry(tmp_path, **FROZEN_TIMEOUTS) as s3:
        pid = s3.registry.process.pid
        traffic = Traffic(s3.registry.url, s3.seeds, WORKERS)
        windows = run_through_outages(traffic, outages, FROZEN_FOR, s3.moto.freeze, s3.moto.thaw)
        verdict = judge(list(traffic.answers()), windows)
        kept = [*s3.seeds, *traffic.acked]
        lost = len(kept) - pulled_intact_count(s3.client(), kept)
        recovered = int(kept_serving(s3.registry, pid, traffic))
    tally.record(
        "Faults",
        "S3 server frozen (SIGSTOP) during pushes and pulls",
        tried=outages,
        **verdict.tally_fields(),
        data_lost=lost,
        corrupt_served=traffic.corrupt,
        recovered_without_restart=recovered,
    )
    assert verdict.during > 0, f"no request failed during the outage: the test tried nothing; {verdict.met}"
    assert (verdict.non_retryable, verdict.hangs, lost, traffic.corrupt, recovered) == (0, 0, 0, 0, 1), verdict


# -- PostgreSQL ----------------------------------------------------------------------------------------------------

ALICE = ("alice", "alice-outage-password")
FAST_BOUND = 5.0  # seconds: during the outage an answer must come at least this fast


@dataclass
class TokenRegistry:
    """A token-mode registry on PostgreSQL, with ``alice/app:v1`` (public) pushed by alice."""

    postgres: PostgresCluster
    registry: LiveRegistry
    image: Image

    def token(self, scope: str, credentials: tuple[str, str] | None = None) -> Answer:
        """The token service's answer (``body`` holds the JSON with the token)."""
        client = RegistryClient(self.registry.url)
        params = f"?service=dockyard&scope={scope}"
        return client.request("GET", f"/auth/token{params}", auth=credentials)

    def client(self, scope: str, credentials: tuple[str, str] | None = None) -> RegistryClient | None:
        """A client holding a token for ``scope``, or None when the token service refused."""
        answer = self.token(scope, credentials)
        if answer.status != 200:
            return None
        return RegistryClient(self.registry.url, token=json.loads(answer.body)["token"])


def write_token_config(path: Path, database_url: str, workdir: Path) -> Path:
    auth = {
        "mode": "token",
        "database_url": database_url,
        "key_path": str(workdir / "signing-key.pem"),
        "state_dir": str(workdir / "state"),
        "bcrypt_rounds": 4,
        "default_visibility": "public",
    }
    path.write_text(yaml.safe_dump({"auth": auth}))
    return path


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[TokenRegistry]:
    with postgres_cluster() as pg:
        database = asyncio.run(create_durable_database(pg))
        config = write_token_config(tmp_path / "config.yml", pg.url(database), tmp_path)
        made = run_dockyard("user", "add", ALICE[0], "--password-stdin", "--config", str(config), stdin=ALICE[1])
        assert made.returncode == 0, made.stderr
        with live_registry(tmp_path, "--config", str(config)) as registry:
            image = make_image("alice/app", "v1", (16 << 10, 64 << 10), random.Random(5).randbytes)
            setup = TokenRegistry(pg, registry, image)
            alice = setup.client("repository:alice/app:pull,push", ALICE)
            assert alice is not None
            assert push_image(alice, image).status == 201
            yield setup


def anonymous_pull(setup: TokenRegistry) -> list[Answer]:
    """An anonymous pull from scratch: token, manifest, blobs (stops at the first failure)."""
    answer = setup.token("repository:alice/app:pull")
    if answer.status != 200:
        return [answer]
    client = RegistryClient(setup.registry.url, token=json.loads(answer.body)["token"])
    return [answer, *pull_with(client, setup.image)]


def pull_with(client: RegistryClient, image: Image) -> list[Answer]:
    """Manifest then blobs with a token already held; stops at the first failure; a 200 must be the pushed bytes."""
    answers = [client.get_manifest(image.repo, image.tag)]
    for blob in image.blobs if answers[0].ok else ():
        answers.append(client.get_blob(image.repo, sha256(blob)))
        if not answers[-1].ok:
            break
    return answers


def served_wrong(pulls: list[Answer], image: Image) -> int:
    """Successful pull answers whose bytes are not the image's manifest or one of its blobs."""
    return sum(answer.ok and answer.body not in (image.manifest, *image.blobs) for answer in pulls)


def after_recovery(setup: TokenRegistry) -> tuple[bool, bool]:
    """Everything works again: (an anonymous pull is intact and alice's account, repository and tag are there;
    alice pushes a new tag, and both tags are listed)."""
    pulled = anonymous_pull(setup)
    intact = all(answer.ok for answer in pulled) and served_wrong(pulled[1:], setup.image) == 0
    alice = setup.client("repository:alice/app:pull,push", ALICE)
    if alice is None:
        return False, False
    newer = make_image("alice/app", "v2", (16 << 10,), random.Random(6).randbytes)
    pushed = push_image(alice, newer).status == 201 and pulled_intact(alice, newer)
    tags = alice.request("GET", "/v2/alice/app/tags/list")
    listed = tags.status == 200 and json.loads(tags.body).get("tags") == ["v1", "v2"]
    return intact and pulled_intact(alice, setup.image), pushed and listed


def test_database_outage_in_token_mode(token_registry: TokenRegistry, tally: Tally) -> None:
    setup = token_registry
    pid = setup.registry.process.pid
    held = setup.client("repository:alice/app:pull")  # an anonymous token fetched before the outage
    assert held is not None
    rounds = scaled(4, 20)
    tokens: list[Answer] = []
    pulls: list[Answer] = []
    stop_immediately(setup.postgres)
    try:
        for _ in range(rounds):
            fresh = anonymous_pull(setup)
            tokens.append(fresh[0])
            pulls += fresh[1:] + pull_with(held, setup.image)
            tokens.append(setup.token("repository:alice/app:pull,push", ALICE))  # a login needs the database
    finally:
        start_again(setup.postgres)
    answers = tokens + pulls
    failed = [answer for answer in answers if not answer.ok]
    non_retryable = sum(not answer.retryable for answer in failed)
    slow = sum(answer.seconds > FAST_BOUND for answer in answers)
    corrupt = served_wrong(pulls, setup.image)
    intact, pushed_after = after_recovery(setup)
    alive = setup.registry.process.poll() is None and setup.registry.process.pid == pid
    recovered = int(alive and intact and pushed_after)
    tally.record(
        "Faults",
        "PostgreSQL stopped (immediate) under token-mode pulls and logins, then started",
        tried=rounds,
        requests_during_outage=len(answers),
        served=len(answers) - len(failed),
        retryable_503=len(failed) - non_retryable,
        non_retryable=non_retryable,
        slower_than_5s=slow,
        corrupt_served=corrupt,
        recovered_without_restart=recovered,
    )
    examples = [f"{a.status} {a.code} {a.error} {a.body[:200]!r}" for a in failed if not a.retryable][:5]
    assert (non_retryable, slow, corrupt, recovered) == (0, 0, 0, 1), examples

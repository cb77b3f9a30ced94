"""Side-by-side blob push/pull benchmark on S3: dockyard against CNCF Distribution, both on one moto server.

Run from the repository root::

    .venv/bin/python bench/s3_push_pull.py [--sizes 100M,1G] [--runs N] [--keep]

One moto server (its own process, free loopback port, private temp dir) holds two buckets; ``dockyard serve``
uses one and ``/usr/bin/docker-registry`` (Distribution 2.8) the other, both streaming blob bytes through the
registry (no redirects). For each size, one random file is written once; each run changes its first 32 bytes
(so every run pushes a blob neither registry has seen, and neither dedups), then pushes it to each registry the
way docker does (POST, one streamed chunked PATCH, PUT ?digest=) and pulls it back (GET, hashed, verified).
The medians are printed as a table, with each server's peak RSS. Everything started here is stopped by pid.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: reuse the test helpers
from tests.support.server import free_port, stop_process

MiB = 1 << 20
IO_CHUNK = 1 << 20  # client read/write block size
PART_SIZE = 10 * MiB  # S3 multipart part size, the same for both registries
HTTP_TIMEOUT = 600.0
START_TIMEOUT = 30.0
CREDENTIAL = "testing"
REGION = "us-east-1"
DISTRIBUTION_BIN = Path("/usr/bin/docker-registry")
REGISTRIES = ("dockyard", "distribution")
OPERATIONS = ("push", "finish", "pull")
SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
SMALL_BLOB = 256 * MiB  # sizes up to this are measured three times by default, larger ones once


class BenchError(Exception):
    """The benchmark cannot go on; the message is one readable line."""


@dataclass
class Server:
    """A process this script started, listening on ``127.0.0.1:port``; its output goes to ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> http.client.HTTPConnection:
        """A new HTTP connection to this server (with a large block size, so the client is not the bottleneck)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT, blocksize=IO_CHUNK)


@dataclass
class BlobFile:
    """Blob bytes in a file, with their size and sha256 digest."""

    path: Path
    size: int
    digest: str = ""


@dataclass
class PushTiming:
    """Seconds for a whole push (POST + PATCH + PUT) and for its final PUT alone."""

    total: float
    finish: float


@dataclass
class SizeResult:
    """Every measurement of one blob size: ``times[registry][operation]`` lists seconds, one per run."""

    size: int
    times: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {r: {op: [] for op in OPERATIONS} for r in REGISTRIES}
    )
    peak_rss: dict[str, int | None] = field(default_factory=dict)
    raw_completion: float = 0.0  # the S3 server's CompleteMultipartUpload alone, for the finish column


# --- command line -----------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``100M`` -> 104857600 (binary units K, M, G; a bare number is bytes)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = SUFFIXES.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in SUFFIXES else text
    try:
        value = int(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 100M or 1G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    """``100M,1G`` -> the sizes in bytes."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def human_size(size: int) -> str:
    """104857600 -> ``100M``."""
    for suffix, unit in sorted(SUFFIXES.items(), key=lambda item: -item[1]):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"{size}B"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=parse_sizes, default=[100 * MiB, 1 << 30], help="e.g. 100M,1G (default)")
    parser.add_argument("--runs", type=int, default=None, help="runs per size (default: 3 up to 256M, else 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs, blob files)")
    return parser.parse_args(argv)


# --- processes --------------------------------------------------------------------------------------------


def venv_tool(name: str) -> Path:
    """A console script next to this interpreter (``.venv/bin/NAME``), else one on PATH."""
    local = Path(sys.executable).with_name(name)
    found = local if local.exists() else shutil.which(name)
    if found is None:
        raise BenchError(f"{name} not found (run `make install` first)")
    return Path(found)


def last_log_line(log: Path) -> str:
    """The last non-empty line of a server's log (for error messages)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def start_server(stack: ExitStack, name: str, cmd: list[str], port: int, workdir: Path, env: dict[str, str]) -> Server:
    """Start ``cmd`` with its output in ``workdir/NAME.log``; the stack stops it (by pid) on exit."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as log_fh:
        try:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT, env=env, cwd=workdir
            )
        except OSError as exc:
            raise BenchError(f"cannot start {name} ({cmd[0]}): {exc.strerror or exc}") from None
    stack.callback(stop_process, process)
    return Server(name, process, port, log)


def http_status(server: Server, path: str) -> int | None:
    """The status of ``GET path``, or None when the server does not answer (yet)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_ready(server: Server, path: str, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``GET path`` answers 200; raise :class:`BenchError` if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    status: int | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            detail = last_log_line(server.log)
            raise BenchError(
                f"{server.name} exited with code {server.process.returncode} before it answered"
                + (f": {detail}" if detail else f" (see {server.log})")
            )
        status = http_status(server, path)
        if status == 200:
            return
        time.sleep(0.1)
    answer = f"answered {status}" if status is not None else "did not answer"
    raise BenchError(f"{server.name} {answer} on {server.url}{path} within {timeout:.0f}s (see {server.log})")


def start_moto(stack: ExitStack, workdir: Path) -> Server:
    """One moto S3 server; its temp files (large objects spill to disk) stay under ``workdir/moto``."""
    state = workdir / "moto"
    state.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(state)}
    cmd = [str(venv_tool("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    server = start_server(stack, "moto", cmd, port, workdir, env)
    wait_ready(server, "/")
    return server


def s3_client(endpoint: str) -> Any:
    """A boto3 client of the moto server."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIAL, aws_secret_access_key=CREDENTIAL, region_name=REGION
    )


def raw_completion_seconds(endpoint: str, bucket: str, blob: BlobFile) -> float:
    """The S3 server's own share of finishing an upload: upload ``blob`` with boto3 in parts of the
    registries' size, then time CompleteMultipartUpload alone (no registry involved)."""
    client = s3_client(endpoint)
    key = f"baseline/{uuid.uuid4().hex}"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts: list[dict[str, Any]] = []
    with blob.path.open("rb") as fh:
        while chunk := fh.read(PART_SIZE):
            number = len(parts) + 1
            etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
    started = time.perf_counter()
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    seconds = time.perf_counter() - started
    client.delete_object(Bucket=bucket, Key=key)
    return seconds


def create_buckets(endpoint: str, names: list[str]) -> None:
    """Create the buckets on the moto server."""
    client = s3_client(endpoint)
    try:
        for name in names:
            client.create_bucket(Bucket=name)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise BenchError(f"cannot create bucket on {endpoint}: {exc}") from None


def dockyard_s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The ``DOCKYARD_STORAGE__*`` variables that put dockyard on ``bucket`` of the moto server at ``endpoint``."""
    return {
        "DOCKYARD_STORAGE__TYPE": "s3",
        "DOCKYARD_STORAGE__BUCKET": bucket,
        "DOCKYARD_STORAGE__ENDPOINT_URL": endpoint,
        "DOCKYARD_STORAGE__ACCESS_KEY_ID": CREDENTIAL,
        "DOCKYARD_STORAGE__SECRET_ACCESS_KEY": CREDENTIAL,
        "DOCKYARD_STORAGE__REGION": REGION,
        "DOCKYARD_STORAGE__MULTIPART_CHUNK_SIZE": str(PART_SIZE),
    }


def distribution_env() -> dict[str, str]:
    """This environment without AWS_CA_BUNDLE (Distribution's AWS SDK panics with it set)."""
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def start_dockyard(stack: ExitStack, workdir: Path, endpoint: str, bucket: str) -> Server:
    """``dockyard serve`` on S3 (the environment keeps AWS_CA_BUNDLE: dockyard must cope with it)."""
    port = free_port()
    env = {**os.environ, **dockyard_s3_env(endpoint, bucket)}
    cmd = [str(venv_tool("dockyard")), "serve", "--listen", f"127.0.0.1:{port}"]
    server = start_server(stack, "dockyard", cmd, port, workdir, env)
    wait_ready(server, "/healthz")  # 200 only once the bucket answers
    return server


def distribution_config(port: int, storage: str, level: str = "info") -> str:
    """Distribution 2.8's config.yml around ``storage`` (the driver's lines under ``storage:``, indented two
    spaces): deletes on, blob descriptors cached in memory as in the ``registry:2`` image, no background upload
    purging, no access log."""
    return f"""\
version: 0.1
log:
  level: {level}
  accesslog:
    disabled: true
http:
  addr: 127.0.0.1:{port}
storage:
{storage}  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
"""


def s3_storage(endpoint: str, bucket: str) -> str:
    """Distribution's ``storage:`` lines for S3 on moto, without redirects (for :func:`distribution_config`)."""
    return f"""\
  s3:
    accesskey: {CREDENTIAL}
    secretkey: {CREDENTIAL}
    region: {REGION}
    regionendpoint: {endpoint}
    bucket: {bucket}
    secure: false
    v4auth: true
    chunksize: {PART_SIZE}
    rootdirectory: /
  redirect:
    disable: true
"""


def start_distribution(stack: ExitStack, workdir: Path, endpoint: str, bucket: str) -> Server:
    """CNCF Distribution on S3; started without AWS_CA_BUNDLE (its AWS SDK panics with it set)."""
    if not DISTRIBUTION_BIN.exists():
        raise BenchError(f"{DISTRIBUTION_BIN} not found (apt-get install docker-registry)")
    port = free_port()
    config = workdir / "distribution.yml"
    config.write_text(distribution_config(port, s3_storage(endpoint, bucket)))
    env = distribution_env()
    cmd = [str(DISTRIBUTION_BIN), "serve", str(config)]
    server = start_server(stack, "distribution", cmd, port, workdir, env)
    wait_ready(server, "/v2/")
    return server


# --- peak memory ------------------------------------------------------------------------------------------


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of ``pid``; False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss(pid: int) -> int | None:
    """Peak resident set size of ``pid`` in bytes (VmHWM), or None if unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


# --- blob data --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """The ``sha256:...`` digest of a file, read in blocks."""
    hasher = hashlib.sha256()
    buffer = bytearray(IO_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            hasher.update(view[:n])
    return f"sha256:{hasher.hexdigest()}"


def write_random_blob(path: Path, size: int) -> BlobFile:
    """Write ``size`` random bytes to ``path`` in blocks (never the whole blob in memory)."""
    hasher = hashlib.sha256()
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            block = os.urandom(min(IO_CHUNK, remaining))
            hasher.update(block)
            fh.write(block)
            remaining -= len(block)
    return BlobFile(path, size, f"sha256:{hasher.hexdigest()}")


def refresh_blob(blob: BlobFile) -> None:
    """Overwrite the first 32 bytes with new random ones and re-hash: a blob no registry has yet."""
    with open(blob.path, "r+b") as fh:
        fh.write(os.urandom(min(32, blob.size)))
    blob.digest = sha256_file(blob.path)


# --- the OCI blob flow ------------------------------------------------------------------------------------


def expect(response: http.client.HTTPResponse, status: int, what: str, server: Server) -> None:
    """Raise :class:`BenchError` unless ``response`` has ``status`` (the body is read either way when small)."""
    if response.status == status:
        return
    body = response.read(500).decode(errors="replace").replace("\n", " ")
    raise BenchError(f"{server.name}: {what} answered {response.status} (expected {status}): {body}")


def location_target(response: http.client.HTTPResponse, server: Server) -> str:
    """The path and query of the response's ``Location`` (absolute or relative)."""
    location = response.getheader("Location")
    if not location:
        raise BenchError(f"{server.name}: upload response has no Location header")
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(target: str, name: str, value: str) -> str:
    """Append ``name=value`` to a path that may already have a query."""
    return f"{target}{'&' if '?' in target else '?'}{name}={value}"


def push_blob(server: Server, repo: str, blob: BlobFile) -> PushTiming:
    """POST, PATCH (the whole file, streamed with chunked transfer encoding, as docker does), PUT ?digest=."""
    conn = server.connect()
    try:
        start = time.perf_counter()
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"")
        response = conn.getresponse()
        expect(response, 202, "POST upload", server)
        response.read()
        target = location_target(response, server)

        with open(blob.path, "rb") as fh:
            headers = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}
            conn.request("PATCH", target, body=fh, headers=headers, encode_chunked=True)
            response = conn.getresponse()
        expect(response, 202, "PATCH upload", server)
        response.read()
        target = location_target(response, server)

        finish_start = time.perf_counter()
        conn.request("PUT", with_query(target, "digest", blob.digest), body=b"")
        response = conn.getresponse()
        expect(response, 201, "PUT upload", server)
        response.read()
        end = time.perf_counter()
    finally:
        conn.close()
    return PushTiming(total=end - start, finish=end - finish_start)


def pull_blob(server: Server, repo: str, blob: BlobFile) -> float:
    """GET the blob, hashing the bytes as they arrive (nothing kept); verify size and digest; the seconds."""
    hasher = hashlib.sha256()
    buffer = bytearray(IO_CHUNK)
    view = memoryview(buffer)
    received = 0
    conn = server.connect()
    try:
        start = time.perf_counter()
        conn.request("GET", f"/v2/{repo}/blobs/{blob.digest}")
        response = conn.getresponse()
        expect(response, 200, "GET blob", server)
        while n := response.readinto(buffer):
            hasher.update(view[:n])
            received += n
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    digest = f"sha256:{hasher.hexdigest()}"
    if received != blob.size or digest != blob.digest:
        raise BenchError(f"{server.name}: pulled {received} bytes with {digest}, expected {blob.size} {blob.digest}")
    return elapsed


# --- the benchmark ----------------------------------------------------------------------------------------


def runs_for(size: int, runs: int | None) -> int:
    """How many times to measure a size: ``--runs``, else 3 for small blobs and 1 for large ones."""
    if runs is not None:
        return max(1, runs)
    return 3 if size <= SMALL_BLOB else 1


def measure_once(server: Server, blob: BlobFile, result: SizeResult, run: int) -> None:
    """Push then pull ``blob`` in a fresh repository of ``server``; record the times."""
    repo = f"bench/{human_size(blob.size).lower()}-run{run}-{uuid.uuid4().hex[:8]}"
    try:
        push = push_blob(server, repo, blob)
        pull = pull_blob(server, repo, blob)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"{server.name}: connection failed: {exc!r} (see {server.log})") from None
    times = result.times[server.name]
    times["push"].append(push.total)
    times["finish"].append(push.finish)
    times["pull"].append(pull)
    print(
        f"  {human_size(blob.size):>5} run {run + 1} {server.name:<12} "
        f"push {push.total:7.2f}s (finish {push.finish:6.3f}s)  pull {pull:7.2f}s",
        flush=True,
    )


def measure_size(
    servers: dict[str, Server], moto: Server, size: int, runs: int, workdir: Path, baseline_bucket: str
) -> SizeResult:
    """All runs of one size, the registries alternating who goes first; peak RSS over this size's runs."""
    result = SizeResult(size)
    watched = [*servers.values(), moto]
    for server in watched:
        reset_peak_rss(server.process.pid)
    blob = write_random_blob(workdir / f"blob-{human_size(size)}", size)
    for run in range(runs):
        if run:
            refresh_blob(blob)
        order = REGISTRIES if run % 2 == 0 else REGISTRIES[::-1]
        for name in order:
            measure_once(servers[name], blob, result, run)
    for server in watched:
        result.peak_rss[server.name] = peak_rss(server.process.pid)
    result.raw_completion = raw_completion_seconds(moto.url, baseline_bucket, blob)
    print(f"  {human_size(size):>5} moto's CompleteMultipartUpload alone (boto3, no registry): "
          f"{result.raw_completion:.3f}s", flush=True)  # fmt: skip
    blob.path.unlink()
    return result


# --- report -----------------------------------------------------------------------------------------------


def mib_per_s(size: int, seconds: float) -> str:
    return f"{size / MiB / seconds:8.1f}" if seconds > 0 else f"{'-':>8}"


def table_rows(result: SizeResult) -> Iterator[str]:
    """One line per operation: median seconds of each registry, their ratio and throughput."""
    for op in OPERATIONS:
        dock = statistics.median(result.times["dockyard"][op])
        dist = statistics.median(result.times["distribution"][op])
        ratio = f"{dock / dist:7.2f}" if dist > 0 else f"{'-':>7}"
        rates = (
            f"{mib_per_s(result.size, dock)} {mib_per_s(result.size, dist)}" if op != "finish" else f"{'-':>8} {'-':>8}"
        )
        runs = len(result.times["dockyard"][op])
        yield f"{human_size(result.size):>5}  {op:<7} {runs:>4}  {dock:11.3f} {dist:15.3f} {ratio}  {rates}"


def print_report(results: list[SizeResult], peak_reset: bool) -> None:
    """The medians table and the peak RSS table."""
    print()
    print("median seconds (push = POST+PATCH+PUT; finish = the final PUT alone; pull = GET, hashed)")
    print(f"{'size':>5}  {'op':<7} {'runs':>4}  {'dockyard s':>11} {'distribution s':>15} {'ratio':>7}  "
          f"{'dy MiB/s':>8} {'ds MiB/s':>8}")  # fmt: skip
    for result in results:
        for row in table_rows(result):
            print(row)
        print(f"{human_size(result.size):>5}  {'s3-only':<7} {1:>4}  {result.raw_completion:11.3f}"
              f"{'':>16}{'':>8}  (moto completing a multipart upload of this size by itself)")  # fmt: skip
    print()
    scope = "during each size's runs" if peak_reset else "since start (VmHWM could not be reset)"
    print(f"peak RSS, MiB ({scope})")
    print(f"{'size':>5}  {'dockyard':>9} {'distribution':>13} {'moto':>9}")
    for result in results:
        cells = [result.peak_rss.get(name) for name in (*REGISTRIES, "moto")]
        shown = [f"{value / MiB:.0f}" if value is not None else "-" for value in cells]
        print(f"{human_size(result.size):>5}  {shown[0]:>9} {shown[1]:>13} {shown[2]:>9}")


def versions() -> str:
    """A one-line description of what is compared."""
    try:
        out = subprocess.run([str(DISTRIBUTION_BIN), "--version"], capture_output=True, text=True, timeout=10)
        distribution = out.stdout.split()[-1] if out.stdout.split() else "?"
    except (OSError, subprocess.TimeoutExpired):
        distribution = "?"
    return f"dockyard vs CNCF Distribution {distribution}, both on one moto S3 server, part size {PART_SIZE // MiB} MiB"


# --- main -------------------------------------------------------------------------------------------------


@contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    """A private temp dir, removed on exit unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    try:
        yield path
    finally:
        if keep:
            sys.stdout.flush()
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    """Start moto and both registries, measure every size, print the report, stop everything."""
    print(versions(), flush=True)
    with work_directory(args.keep) as workdir, ExitStack() as stack:
        moto = start_moto(stack, workdir)
        buckets = {name: f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in REGISTRIES}
        baseline = f"bench-baseline-{uuid.uuid4().hex[:8]}"
        create_buckets(moto.url, [*buckets.values(), baseline])
        starters: dict[str, Callable[[ExitStack, Path, str, str], Server]] = {
            "dockyard": start_dockyard,
            "distribution": start_distribution,
        }
        servers = {name: starters[name](stack, workdir, moto.url, buckets[name]) for name in REGISTRIES}
        peak_reset = all(reset_peak_rss(s.process.pid) for s in (*servers.values(), moto))
        results = [
            measure_size(servers, moto, size, runs_for(size, args.runs), workdir, baseline) for size in args.sizes
        ]
        print_report(results, peak_reset)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        sys.stdout.flush()
        print(f"s3_push_pull: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("s3_push_pull: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

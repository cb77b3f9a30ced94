"""``python -m bench [--quick] [--s3] [--json FILE] [--markdown FILE]``: the side-by-side run.

Measures the limits (the disk's too unless ``--s3``), starts both registries (:mod:`.servers`), runs the
selected row groups in a fixed order (blob rows first, while the storage is small and the page cache is easy to
drop; populations before the listings; the catalog before the small images add repositories), measures the
limits again, judges the targets (with the ceilings the limits set), prints the Markdown report and writes the
files asked for. Exit status: 0 after a complete run (targets missed or not), 1 when the benchmark could not run
(one line on stderr), 130 on Ctrl-C. Everything started is stopped by pid and the temp dir removed (unless
``--keep``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.s3_push_pull import BenchError, work_directory
from bench.sidebyside import api_rows, blob_rows, image_rows, limits, procstat
from bench.sidebyside.plan import FULL, QUICK, Plan
from bench.sidebyside.report import Report, markdown, write_json
from bench.sidebyside.servers import start_registries
from bench.sidebyside.targets import Limits, judge
from tests.support.clients import ToolError

GROUPS = ("upload", "chunked", "download", "manifest", "tags", "catalog", "skopeo", "small")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="dockyard vs CNCF Distribution 2.8")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts (a smoke run)")
    parser.add_argument("--s3", action="store_true", help="both registries on one moto S3 server")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown report")
    parser.add_argument(
        "--only", default=",".join(GROUPS), help=f"comma-separated row groups (default all: {','.join(GROUPS)})"
    )
    parser.add_argument(
        "--dockyard-arg", action="append", default=[], metavar="ARG", help="extra argument of `dockyard serve`"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs, configs)")
    args = parser.parse_args(argv)
    args.groups = {group.strip() for group in args.only.split(",") if group.strip()}
    unknown = args.groups - set(GROUPS)
    if unknown:
        parser.error(f"unknown row groups: {', '.join(sorted(unknown))} (choose from {', '.join(GROUPS)})")
    return args


def measure_limits(plan: Plan, workdir: Path, disk: bool) -> Limits:
    """The limits, now (measured before and after the rows; the best counts): SHA-256 on one core, loopback
    sendfile and copy at ``plan.sendfile_size``; with ``disk`` (the registries store on the disk of ``workdir``)
    also a cold read at the download size and a durable write at each monolithic size with the SHA target."""
    print("measuring the limits (SHA-256 on one core, loopback sendfile and copy, the disk)", flush=True)
    cold_read: float | None = None
    durable_write: dict[int, float] = {}
    if disk:
        cold_read = limits.cold_read_mb_s(workdir, plan.download_size)
        for size, _rounds in plan.monolithic:
            if plan.has_sha_target(size):
                durable_write[size] = limits.durable_write_mb_s(workdir, size)
    return Limits(
        limits.sha256_mb_s(plan.sha_buffer),
        limits.sendfile_mb_s(workdir, plan.sendfile_size),
        limits.copy_mb_s(workdir, plan.sendfile_size),
        cold_read,
        durable_write,
    )


def publish(report: Report, args: argparse.Namespace) -> None:
    """Print the Markdown report; write the files asked for."""
    text = markdown(report)
    print()
    print(text, flush=True)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        write_json(report, args.json)


def run(args: argparse.Namespace) -> Report:
    """The whole run, published before the servers stop and the temp dir goes (removing 10,000 repositories
    takes a while); raises :class:`BenchError` when it cannot go on."""
    plan = QUICK if args.quick else FULL
    with work_directory(args.keep) as workdir, ExitStack() as stack:
        first = measure_limits(plan, workdir, not args.s3)
        registries = start_registries(stack, workdir, args.s3, args.dockyard_arg)
        idle = {registry.name: procstat.rss(registry.pid) for registry in registries}
        command = shlex.join(["dockyard", "serve", *args.dockyard_arg])
        options = {"quick": args.quick, "s3": args.s3, "groups": sorted(args.groups), "dockyard_command": command}
        report = Report(options, first, idle)
        print(f"dockyard on {registries[0].url}, Distribution on {registries[1].url}; work dir {workdir}", flush=True)
        report.rows.extend(blob_rows.rows(registries, plan, workdir, args.groups))
        report.rows.extend(api_rows.rows(registries, plan, args.groups))
        report.rows.extend(image_rows.rows(registries, plan, workdir, args.groups))
        report.limits = Limits.best(first, measure_limits(plan, workdir, not args.s3))
        for row in report.rows:
            judge(row, report.limits)
        publish(report, args)
        print("stopping the servers and removing the temp dir", flush=True)
        return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (BenchError, ToolError) as exc:
        sys.stdout.flush()
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0

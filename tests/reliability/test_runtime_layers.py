"""Malicious layers against the runtime's applier (``runtime/applier.py``): every case is refused with one clear line
or contained in the target, nothing is written outside it (a canary directory next to the target is snapshotted
before and after: paths, types, modes, owners, content hashes, link targets, devices), and a refused layer leaves
nothing half-extracted. The corpus is the applier's own (``tests/runtime/test_applier.py`` ``MALICIOUS``) plus
``attack_layers.EXTRA``; bombs and sparse files are checked for the disk they take; a few go through the real CLI
(``dockyard run`` of an image pulled from a live registry).

Decompression bombs: the applier has no cap on a layer's uncompressed size (docker has none either: real layers
reach tens of GiB). Runs of zeros and sparse members become holes, so a bomb of zeros costs time, not disk; a bomb
of other bytes fills the disk and is then rolled back whole (checked on a small tmpfs).
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from runtime.applier import MAX_DEPTH, LayerError, apply_layer
from tests.reliability.attack_layers import (
    EXTRA,
    Case,
    canary,
    deep_tree,
    gzip_bomb,
    push_layer,
    snapshot,
    sparse_member,
)
from tests.reliability.tally import Tally, scaled
from tests.runtime.test_applier import MALICIOUS
from tests.support.server import live_registry, run_dockyard
from tests.support.tools import require_root, require_tool

LABEL = "sha256:hostile"
SECTION = "Hostile input"
CORPUS: tuple[Case, ...] = (
    *(Case(name, lambda outside, build=build: build(outside)[0], "refused") for name, build in MALICIOUS.items()),
    *EXTRA,
)
GIB = 1 << 30


def apply(data: bytes, target: Path) -> LayerError | None:
    """Apply ``data`` onto ``target``; the refusal, or None when applied."""
    try:
        apply_layer(io.BytesIO(data), target, label=LABEL)
    except LayerError as exc:
        return exc
    return None


def one_clear_line(error: LayerError) -> bool:
    message = str(error)
    return "\n" not in message and message.startswith(f"layer {LABEL}")


def test_malicious_layer_corpus(tmp_path: Path, tally: Tally) -> None:
    """Each case on a fresh target next to the canary: refused or contained as declared; the canary unchanged."""
    require_root()
    host = canary(tmp_path / "host")
    before = snapshot(host)
    escaped = wrong_outcome = half_extracted = unclear = 0
    for number, case in enumerate(CORPUS):
        target = tmp_path / f"root-{number}"
        error = apply(case.build(host), target)
        escaped += snapshot(host) != before
        wrong_outcome += (error is None) != (case.outcome == "contained")
        half_extracted += error is not None and target.exists()
        unclear += error is not None and not one_clear_line(error)
        assert snapshot(host) == before, case.name
        assert (error is None) == (case.outcome == "contained"), f"{case.name}: {error}"
    assert set(os.listdir(tmp_path)) == {"host"} | {
        f"root-{n}" for n, c in enumerate(CORPUS) if c.outcome == "contained"
    }
    tally.record(
        SECTION,
        "malicious layer tars (`..`, absolute, symlink/hardlink escapes, devices, whiteouts, long and deep names)",
        tried=len(CORPUS),
        escaped=escaped,
        wrong_outcome=wrong_outcome,
        half_extracted=half_extracted,
        unclear_errors=unclear,
    )
    assert half_extracted == unclear == 0


def test_deep_tree_within_the_limit_is_applied_quickly(tmp_path: Path, tally: Tally) -> None:
    """``MAX_DEPTH`` nested directories apply in linear time (the applier was cubic: 2,000 levels took 3 minutes)
    and can still be removed by ``shutil.rmtree``; one more level is refused."""
    require_root()
    host = canary(tmp_path / "host")
    before = snapshot(host)
    started = time.monotonic()
    assert apply(deep_tree(MAX_DEPTH - 1), tmp_path / "deep") is None
    elapsed = time.monotonic() - started
    refused = apply(deep_tree(MAX_DEPTH), tmp_path / "too-deep")
    assert isinstance(refused, LayerError)
    assert "deeper than" in str(refused)
    assert not (tmp_path / "too-deep").exists()
    assert snapshot(host) == before
    tally.record(SECTION, f"{MAX_DEPTH}-deep directory tree", tried=2, escaped=int(snapshot(host) != before))
    assert elapsed < 10, f"{MAX_DEPTH - 1} levels took {elapsed:.1f}s"


def test_gzip_bomb_of_zeros_and_huge_sparse_file_take_no_disk(tmp_path: Path, tally: Tally) -> None:
    """A few KiB of gzip that inflate to GiBs of zeros, and a sparse member of 1 TiB: applied with the right size,
    stored as holes."""
    require_root()
    host = canary(tmp_path / "host")
    before = snapshot(host)
    size = scaled(2, 32) * GIB
    bomb = gzip_bomb("zeros", size)
    assert apply(bomb, tmp_path / "bomb") is None
    sparse = sparse_member("sparse", 1 << 40, b"data at the end", (1 << 40) - 15)
    assert apply(sparse, tmp_path / "sparse") is None
    zeros, huge = (tmp_path / "bomb" / "zeros").stat(), (tmp_path / "sparse" / "sparse").stat()
    assert (zeros.st_size, huge.st_size) == (size, 1 << 40)
    assert (tmp_path / "sparse" / "sparse").open("rb").read(4) == bytes(4)
    with (tmp_path / "sparse" / "sparse").open("rb") as sparse_file:
        sparse_file.seek((1 << 40) - 15)
        assert sparse_file.read() == b"data at the end"
    disk = (zeros.st_blocks + huge.st_blocks) * 512
    tally.record(
        SECTION,
        f"gzip bomb ({len(bomb) // 1024} KiB → {size // GIB} GiB of zeros) and a 1 TiB sparse file",
        tried=2,
        escaped=int(snapshot(host) != before),
        disk_filled=int(disk > 1 << 20),
    )
    assert disk < 1 << 20
    assert snapshot(host) == before


def test_bomb_that_fills_the_disk_is_rolled_back(tmp_path: Path, tally: Tally) -> None:
    """256 MiB of non-zero bytes onto a 32 MiB tmpfs: refused with one line (ENOSPC), nothing left, canary kept."""
    require_root()
    mount, umount = require_tool("mount"), require_tool("umount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(small)], check=True)
    try:
        host = canary(small / "host")
        before = snapshot(host)
        error = apply(gzip_bomb("fill", 256 << 20, fill=b"A", unit=16 << 20), small / "root")
        assert isinstance(error, LayerError)
        assert one_clear_line(error)
        assert "No space left" in str(error)
        assert os.listdir(small) == ["host"]
        free = os.statvfs(small)
        assert free.f_bfree * free.f_frsize > 30 << 20  # the space came back
        tally.record(
            SECTION,
            "gzip bomb filling the disk (256 MiB of 'A' onto 32 MiB)",
            tried=1,
            escaped=int(snapshot(host) != before),
            half_extracted=int((small / "root").exists()),
        )
        assert snapshot(host) == before
    finally:
        subprocess.run([umount, str(small)], check=True)


CLI_CASES = ("dotdot", "absolute-symlink-parent", "hardlink-to-symlink", "whiteout-of-parent-dir")


@pytest.mark.interop
def test_cli_run_refuses_malicious_images_in_one_line(tmp_path: Path, tally: Tally) -> None:
    """``dockyard run`` of images pulled from a live registry: exit 125, one line naming the layer, the layer
    cache holds no partial directory, the canary is unchanged."""
    require_root()
    host = canary(tmp_path / "host")
    before = snapshot(host)
    cases = [c for c in CORPUS if c.name in CLI_CASES]
    root = tmp_path / "runtime"
    bad_exits = unclear = 0
    with live_registry(tmp_path) as registry:
        for case in cases:
            ref = push_layer(registry.url, f"evil/{case.name}", "v1", case.build(host))
            assert run_dockyard("--root", str(root), "pull", ref).returncode == 0
            result = run_dockyard("--root", str(root), "run", "--rm", "--network", "none", ref, "/bin/true")
            lines = result.stderr.strip().splitlines()
            bad_exits += result.returncode != 125
            unclear += len(lines) != 1 or not lines[0].startswith("dockyard: layer sha256:")
            assert result.returncode == 125, result.stderr
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("dockyard: layer sha256:"), result.stderr
    leftovers = sorted(p.name for p in (root / "layers").iterdir() if not p.name.endswith(".lock"))
    tally.record(
        SECTION,
        "malicious images through `dockyard pull` + `run`",
        tried=len(cases),
        escaped=int(snapshot(host) != before),
        wrong_exit_code=bad_exits,
        unclear_errors=unclear,
        half_extracted=len(leftovers),
    )
    assert leftovers == []
    assert snapshot(host) == before

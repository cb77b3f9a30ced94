"""Container start and image pull benchmark: dockyard against raw runc, podman and skopeo, in one run.

Run from the repository root (as root; needs runc, podman, skopeo and busybox-static)::

    .venv/bin/python bench/runtime_bench.py [--runs 20] [--pull-size 100M] [--pull-runs 3]

What it measures, side by side, with p50 and p90 of wall-clock time per command:

- ``dockyard run --rm --network none IMAGE /bin/true`` (image pulled beforehand). dockyard's default network is
  bridge, like docker's; none is passed to it and to podman alike, so that the comparison stays fair;
- ``runc run`` of an equivalent bundle (the same busybox rootfs, ``runc spec`` config, args ``/bin/true``) with a
  private ``--root``;
- ``podman run --rm --network none IMAGE /bin/true`` (private storage, vfs, runtime runc and the ulimits of a private
  containers.conf; image pulled beforehand);
- ``dockyard pull`` of a 5-layer image of random layers (``--pull-size`` in total) into a fresh root against
  ``skopeo copy docker://... oci:DIR`` of the same image into a fresh directory.

dockyard runs as ``Dockerfile-free-deploy/install.sh`` installs it: a regular (not editable) ``pip install`` of this
checkout into a venv of its own, with the bytecode pip compiles at install time. Its dependencies come from the
development venv (``.venv``) through a path entry, so nothing is downloaded. The development venv's editable install
would cost every command about 15 ms more (its import hook loads at start-up), which no installed dockyard pays.

Every image comes from a live ``dockyard serve`` on 127.0.0.1 started here. Ratios dockyard/runc,
dockyard/podman and dockyard/skopeo are printed with the targets (run within 1.5x runc and faster than podman;
pull no slower than skopeo). Everything started is stopped by pid and the temp dir is removed.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.clients import Podman, Skopeo, ToolHome  # noqa: E402
from tests.support.images import (  # noqa: E402
    PATH_ENV,
    ImageFactory,
    Layer,
    image_config,
)
from tests.support.server import live_registry  # noqa: E402

PULL_LAYERS = 5
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``100M`` -> bytes (K, M, G are powers of 1024; a bare number is bytes)."""
    text = text.strip().upper()
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1])."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def timed(action: Callable[..., None], *args: object) -> float:
    """Wall-clock seconds of ``action(*args)``."""
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def check(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Run ``cmd`` to completion; exit with its output on failure."""
    done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")


def write_image(factory: ImageFactory, tag: str, layers: Sequence[Layer], cmd: Sequence[str]) -> str:
    """Write an image of ``layers`` into the factory's layout; returns its ``oci:DIR:TAG`` reference."""
    process = {"Env": [PATH_ENV], "Cmd": list(cmd), "WorkingDir": "/"}
    return factory.add_image(tag, layers, image_config(layers, "amd64", process=process)).oci_ref


def make_bundle(bundle: Path, layer: Layer) -> None:
    """A runc bundle: ``layer`` unpacked as rootfs and ``runc spec``'s config running ``/bin/true``."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as tar:
        tar.extractall(rootfs, filter="tar")
    check(["runc", "spec", "--bundle", str(bundle)])
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))


def install_dockyard(venv: Path) -> Path:
    """Install this checkout into a new venv (regular install, dependencies from the running venv); the path of its
    ``dockyard`` command."""
    check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]
    Path(site, "dockyard-bench-deps.pth").write_text(deps + "\n")
    check([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(REPO_ROOT)])
    return venv / "bin" / "dockyard"


class Dockyard:
    """``dockyard --root ROOT`` as installed by :func:`install_dockyard` (the command users run), with a private
    HOME, run outside the checkout (so that its modules come from the install)."""

    def __init__(self, root: Path, home: Path, command: Path) -> None:
        self.root = root
        self.command = command
        self.home = home
        (home / ".docker").mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")}
        self.env.pop("PYTHONPATH", None)

    def __call__(self, *args: str, root: Path | None = None) -> None:
        command = [str(self.command), "--root", str(root or self.root), *args]
        check(command, self.env, self.home)


def row(label: str, samples: Sequence[float], unit: str = "ms") -> str:
    scale = 1000.0 if unit == "ms" else 1.0
    p50, p90 = percentile(samples, 0.5) * scale, percentile(samples, 0.9) * scale
    digits = 1 if unit == "ms" else 3
    return f"{label:<24} p50 {p50:9.{digits}f} {unit}   p90 {p90:9.{digits}f} {unit}   (n={len(samples)})"


def ratio(label: str, ours: Sequence[float], theirs: Sequence[float], target: float, goal: str) -> str:
    p50 = percentile(ours, 0.5) / percentile(theirs, 0.5)
    p90 = percentile(ours, 0.9) / percentile(theirs, 0.9)
    verdict = "met" if p50 <= target else "MISSED"
    return f"ratio {label:<18} p50 {p50:6.2f}   p90 {p90:6.2f}   target {goal}: {verdict}"


def bench(work: Path, runs: int, pull_size: int, pull_runs: int) -> list[str]:
    """Build and push the images, time every tool, return the report lines."""
    factory = ImageFactory(work / "layout")
    home = ToolHome(work / "tools")
    try:
        with live_registry(work) as registry:
            skopeo = Skopeo(home, registry)
            podman = Podman(home, registry)
            base = factory.base_layer
            small = f"{registry.host}/bench/true:1"
            skopeo.copy(write_image(factory, "true", [base], ["/bin/true"]), f"docker://{small}")
            each = max(1, pull_size // PULL_LAYERS)
            layers = [factory.random_layer(each, f"bench-{uuid.uuid4()}-{i}") for i in range(PULL_LAYERS)]
            big = f"{registry.host}/bench/big:1"
            skopeo.copy(write_image(factory, "big", layers, ["/bin/true"]), f"docker://{big}")

            dockyard = Dockyard(work / "dockyard", work / "home", install_dockyard(work / "venv"))
            dockyard("pull", small)
            bundle = work / "bundle"
            make_bundle(bundle, base)
            runc_root = work / "runc-state"
            prefix = f"dybench-{uuid.uuid4().hex[:8]}"
            podman.run("pull", "--quiet", "--tls-verify=false", small)
            podman_cmd = [*podman._base(), "run", "--rm", "--network", "none", small, "/bin/true"]

            results: dict[str, list[float]] = {"dockyard": [], "runc": [], "podman": []}
            for i in range(runs):  # interleaved, so drift on the machine hits all three alike
                results["dockyard"].append(timed(dockyard, "run", "--rm", "--network", "none", small, "/bin/true"))
                runc_cmd = ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), f"{prefix}-{i}"]
                results["runc"].append(timed(check, runc_cmd))
                results["podman"].append(timed(check, podman_cmd, home.env))

            pulls: dict[str, list[float]] = {"dockyard": [], "skopeo": []}
            for i in range(pull_runs):
                target = work / f"pull-{i}"
                start = time.perf_counter()
                dockyard("pull", big, root=target / "dockyard")
                pulls["dockyard"].append(time.perf_counter() - start)
                pulls["skopeo"].append(timed(skopeo.copy, f"docker://{big}", f"oci:{target / 'oci'}:big"))
                shutil.rmtree(target, ignore_errors=True)
    finally:
        home.cleanup()

    size = f"{PULL_LAYERS}x{each / (1 << 20):.1f} MiB"
    return [
        row("dockyard run", results["dockyard"]),
        row("runc run", results["runc"]),
        row("podman run", results["podman"]),
        ratio("dockyard/runc", results["dockyard"], results["runc"], 1.5, "<= 1.5"),
        ratio("dockyard/podman", results["dockyard"], results["podman"], 1.0, "< 1.0"),
        row(f"dockyard pull {size}", pulls["dockyard"], "s"),
        row(f"skopeo copy {size}", pulls["skopeo"], "s"),
        ratio("dockyard/skopeo", pulls["dockyard"], pulls["skopeo"], 1.0, "<= 1.0"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="container starts per tool (default 20)")
    parser.add_argument("--pull-size", type=parse_size, default=parse_size("100M"), help="pull image size (100M)")
    parser.add_argument("--pull-runs", type=int, default=3, help="pulls per tool (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.pull_runs < 1:
        parser.error("--runs and --pull-runs must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="dockyard-runtime-bench-"))
    try:
        lines = bench(work, args.runs, args.pull_size, args.pull_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"runtime benchmark: {args.runs} runs, pull {args.pull_size / (1 << 20):.0f} MiB x {args.pull_runs}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

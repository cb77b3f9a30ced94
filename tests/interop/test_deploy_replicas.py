"""Issue 7's replica deployment, for real: three ``dockyard serve`` replicas sharing one S3 bucket (moto) and one
PostgreSQL database, behind nginx with the deployment kit's own site config (TLS, round-robin, unbuffered).

Clients only ever talk to nginx. Docker pushes a large image while one replica is killed with SIGKILL; docker's
retry completes it through the others. Upload requests land on several replicas (no sticky sessions), token
realms name the proxy's URL (X-Forwarded-* from a trusted proxy), and docker, skopeo, podman and oras pull back
exactly what was pushed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from dockyard.certs import self_signed
from tests.support.clients import Docker, Podman, Skopeo, ToolHome
from tests.support.dockerd import Dockerd
from tests.support.images import ImageFactory, write_docker_archive
from tests.support.nginx import Nginx, running_nginx
from tests.support.postgres import postgres_cluster
from tests.support.s3 import S3Server
from tests.support.server import LiveRegistry, live_registry, run_dockyard

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("replicas")]

REPLICAS = 3
ALICE = ("alice", "alice-replica-password")
KILL_TIMEOUT = 60.0


@dataclass
class Cluster:
    replicas: list[LiveRegistry]
    nginx: Nginx
    cert_dir: Path
    config: Path
    env: dict[str, str]

    @property
    def host(self) -> str:
        return self.nginx.host

    @property
    def ca(self) -> Path:
        return self.cert_dir / "ca.crt"

    def upload_requests(self) -> Counter[int]:
        """How many blob-upload requests each replica (by index) logged."""
        counts: Counter[int] = Counter()
        for index, replica in enumerate(self.replicas):
            for line in replica.log.read_text(errors="replace").splitlines():
                if "/blobs/uploads/" in line:
                    counts[index] += 1
        return counts


def write_config(path: Path, database_url: str, workdir: Path) -> None:
    config = {
        "auth": {
            "mode": "token",
            "database_url": database_url,
            "key_path": str(workdir / "signing-key.pem"),
            "state_dir": str(workdir / "state"),
            "bcrypt_rounds": 4,
            "login_failures": 100,
        },
        "trusted_proxies": ["127.0.0.1"],
        "gc": {"interval": "3s", "grace": "1h"},  # every replica schedules GC; the lease lets one run at a time
    }
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("replicas")
    env = s3.registry_env(s3.new_bucket())
    cert_dir = work / "certs"
    cert_dir.mkdir()
    cert, key = self_signed(["127.0.0.1"], days=1)
    (cert_dir / "ca.crt").write_bytes(cert)
    (work / "tls.key").write_bytes(key)
    with postgres_cluster() as pg, ExitStack() as stack:
        database = asyncio.run(pg.create_database())
        config = work / "config.yml"
        write_config(config, pg.url(database), work)
        made = run_dockyard(
            "user", "add", ALICE[0], "--password-stdin", "--config", str(config), stdin=ALICE[1], env=env
        )
        assert made.returncode == 0, made.stderr
        replicas = []
        for i in range(REPLICAS):  # one after the other: the first creates the shared signing key
            (work / f"replica-{i}").mkdir()
            replicas.append(stack.enter_context(live_registry(work / f"replica-{i}", "--config", str(config), env=env)))
        nginx = stack.enter_context(
            running_nginx(work / "nginx", [r.port for r in replicas], cert_dir / "ca.crt", work / "tls.key")
        )
        yield Cluster(replicas, nginx, cert_dir, config, env)


def test_token_realm_is_the_proxys_url(cluster: Cluster) -> None:
    resp = requests.get(f"https://{cluster.host}/v2/", verify=cluster.ca, timeout=10)
    assert resp.status_code == 401
    assert f'realm="https://{cluster.host}/auth/token"' in resp.headers["WWW-Authenticate"]
    token = requests.get(
        f"https://{cluster.host}/auth/token",
        params={"service": "dockyard", "scope": "repository:alice/probe:pull,push"},
        auth=ALICE,
        verify=cluster.ca,
        timeout=10,
    )
    assert token.status_code == 200, token.text
    assert token.json()["token"]


def wait_for_upload_traffic(cluster: Cluster, before: Counter[int], push: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + KILL_TIMEOUT
    while time.monotonic() < deadline:
        if push.poll() is not None:
            raise AssertionError(f"docker push ended before a replica could be killed: {push.communicate()}")
        if sum(cluster.upload_requests().values()) > sum(before.values()) + 2:
            return
        time.sleep(0.05)
    raise AssertionError("no upload request reached a replica")


def test_docker_push_survives_a_killed_replica(
    cluster: Cluster, dockerd: Dockerd, tool_home: ToolHome, image_factory: ImageFactory, tmp_path: Path
) -> None:
    docker = Docker(dockerd.host, tmp_path / "docker-config", tool_home)
    (tmp_path / "docker-config").mkdir()
    (tmp_path / "docker-config" / "config.json").write_text('{"auths": {}}')
    layers = [image_factory.random_layer(24 << 20, f"replica-kill-{i}") for i in range(3)]
    image = image_factory.image("replica-kill", extra_layers=layers)
    local, remote = "dockyard-test/replica-kill:v1", f"{cluster.host}/alice/replica-kill:v1"
    docker.run("load", "--input", str(write_docker_archive(image, tmp_path / "img.tar", [local])))
    docker.run("tag", local, remote)
    docker.run("login", cluster.host, "--username", ALICE[0], "--password", ALICE[1])
    before = cluster.upload_requests()
    push = subprocess.Popen(
        [docker.binary, "push", remote], env=docker.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_upload_traffic(cluster, before, push)
        victim = cluster.replicas[1].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        output, _ = push.communicate(timeout=600)
    finally:
        if push.poll() is None:
            push.kill()
            push.wait()
    assert push.returncode == 0, output
    pushed = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
    assert pushed is not None, output
    served = cluster.upload_requests() - before
    assert len(served) >= 2, f"upload requests by replica: {dict(served)}"
    docker.remove_all_images()
    docker.run("pull", remote)
    assert docker.image_inspect(remote)["Id"] == image.config_digest
    skopeo = Skopeo(tool_home)
    pulled = skopeo.run(
        "inspect", "--cert-dir", str(cluster.cert_dir), "--creds", ":".join(ALICE), f"docker://{remote}"
    )
    assert json.loads(pulled.stdout)["Digest"] == pushed.group(1)  # docker pushes its own (schema 2) manifest


def test_skopeo_and_podman_through_the_proxy(
    cluster: Cluster, tool_home: ToolHome, image_factory: ImageFactory
) -> None:
    image = image_factory.image("replica-skopeo")
    target = f"docker://{cluster.host}/alice/replica-skopeo:v1"
    skopeo = Skopeo(tool_home)
    creds = ":".join(ALICE)
    skopeo.run(
        "copy", "--quiet", "--dest-cert-dir", str(cluster.cert_dir), "--dest-creds", creds, image.oci_ref, target
    )
    for _ in range(REPLICAS):  # every request of the round robin, including the replicas left after a kill
        inspected = skopeo.run("inspect", "--cert-dir", str(cluster.cert_dir), "--creds", creds, target)
        assert json.loads(inspected.stdout)["Digest"] == image.digest
    podman = Podman(tool_home)
    podman.run("pull", "--cert-dir", str(cluster.cert_dir), "--creds", creds, target.removeprefix("docker://"))
    assert podman.image_inspect(target.removeprefix("docker://"))["Digest"] == image.digest


def test_oras_through_the_proxy(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oras.client

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.ca))  # oras-py asks requests to verify with the default

    artifact = tmp_path / "notes.txt"
    artifact.write_text("hello through nginx")
    client = oras.client.OrasClient(hostname=cluster.host, tls_verify=True)
    client.auth.set_basic_auth(*ALICE)
    target = f"{cluster.host}/alice/notes:v1"
    client.push(target=target, files=[str(artifact)], disable_path_validation=True)
    files = client.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert Path(files[0]).read_text() == "hello through nginx"

"""Token mode with real clients against a live ``dockyard serve``: docker login/push/pull (a real dockerd),
podman login, skopeo --creds, oras with basic auth; wrong passwords and foreign namespaces fail cleanly;
anonymous pulls work for public repositories and not for private ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import oras.client
import oras.decorator
import pytest
import requests

from tests.support.clients import Docker, Podman, Skopeo, ToolError, ToolHome
from tests.support.dockerd import Dockerd
from tests.support.images import ImageFactory, write_docker_archive
from tests.support.registries import TOKEN_ENV, add_user
from tests.support.server import LiveRegistry, live_registry, run_dockyard

pytestmark = pytest.mark.interop

USERS = {"alice": "alice-password-1", "bob": "bob-password-22"}


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[LiveRegistry]:
    """A live registry in token mode with users alice and bob, created with the admin commands first."""
    for name, password in USERS.items():
        add_user(tmp_path / "registry-data", name, password)
    # TOKEN_ENV lifts the failed-login limit: clients retry refused logins on their own (the limit has its own tests)
    with live_registry(tmp_path, env=TOKEN_ENV) as registry:
        yield registry


def anonymous_catalog(registry: LiveRegistry) -> list[str]:
    token = requests.get(
        f"{registry.url}/auth/token", params={"service": "dockyard", "scope": "registry:catalog:*"}, timeout=10
    ).json()["token"]
    resp = requests.get(f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["repositories"])


@pytest.fixture
def docker_user(
    dockerd: Dockerd, tool_home: ToolHome, token_registry: LiveRegistry, tmp_path: Path
) -> Iterator[Docker]:
    """The docker CLI with a config directory (credentials) of its own, on the worker's dockerd."""
    config = tmp_path / "docker-config"
    config.mkdir()
    client = Docker(dockerd.host, config, tool_home, token_registry)
    client.remove_all_images()
    try:
        yield client
    finally:
        client.remove_all_images()


def test_new_user_login_push_private_and_anonymous_host_locked_out(
    docker_user: Docker,
    token_registry: LiveRegistry,
    image_factory: ImageFactory,
    tmp_path: Path,
) -> None:
    """The issue's journey: login, push to one's namespace, make it private; an anonymous client (its own
    config, no credentials) could pull it before and can neither pull nor list it after."""
    registry = token_registry
    image = image_factory.image("auth-journey")
    local = "dockyard-test/auth-journey:loaded"
    docker_user.run("load", "--input", str(write_docker_archive(image, tmp_path / "img.tar", [local])))
    remote = f"{registry.host}/alice/app:v1"
    docker_user.run("tag", local, remote)

    refused = docker_user.run("push", remote, check=False)  # not logged in yet
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    wrong = docker_user.run(
        "login", registry.host, "--username", "alice", "--password", "not-her-password", check=False
    )
    assert wrong.returncode != 0
    assert "unauthorized" in (wrong.stderr + wrong.stdout).lower()
    docker_user.run("login", registry.host, "--username", "alice", "--password", USERS["alice"])
    digest = docker_user.push(remote)

    anonymous = Skopeo(ToolHome(tmp_path / "anonymous-host"), registry)
    assert anonymous.inspect(f"docker://{remote}")["Digest"] == digest  # public by default
    assert "alice/app" in anonymous_catalog(registry)
    docker_user.run("logout", registry.host)
    docker_user.remove_all_images()
    docker_user.run("pull", remote)  # anonymous docker pull of a public repository
    assert docker_user.image_inspect(remote)["Id"] == image.config_digest

    made_private = run_dockyard("repo", "visibility", "alice/app", "private", "--data", str(registry.data))
    assert made_private.returncode == 0, made_private.stderr

    locked = anonymous.run("inspect", "--tls-verify=false", f"docker://{remote}", check=False)
    assert locked.returncode != 0
    assert "unauthorized" in locked.stderr.lower() or "denied" in locked.stderr.lower()
    assert "alice/app" not in anonymous_catalog(registry)
    docker_user.remove_all_images()
    pulled = docker_user.run("pull", remote, check=False)
    assert pulled.returncode != 0
    assert "denied" in pulled.stderr.lower() or "unauthorized" in pulled.stderr.lower()
    docker_user.run("login", registry.host, "--username", "alice", "--password", USERS["alice"])
    docker_user.run("pull", remote)  # the owner still can
    assert docker_user.image_inspect(remote)["Id"] == image.config_digest


def test_pushing_to_someone_elses_namespace_is_refused(
    docker_user: Docker, token_registry: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    image = image_factory.image("auth-foreign")
    local = "dockyard-test/auth-foreign:loaded"
    docker_user.run("load", "--input", str(write_docker_archive(image, tmp_path / "img.tar", [local])))
    remote = f"{token_registry.host}/alice/stolen:v1"
    docker_user.run("tag", local, remote)
    docker_user.run("login", token_registry.host, "--username", "bob", "--password", USERS["bob"])
    result = docker_user.run("push", remote, check=False)
    assert result.returncode != 0
    assert "denied" in (result.stderr + result.stdout).lower()
    assert "Traceback" not in result.stderr


def test_podman_login_push_pull(token_registry: LiveRegistry, tool_home: ToolHome, image_factory: ImageFactory) -> None:
    podman = Podman(tool_home, token_registry)
    skopeo = Skopeo(tool_home, token_registry)
    image = image_factory.image("auth-podman")
    target = f"{token_registry.host}/bob/podman-app:v1"
    wrong = podman.run(
        "login", "--tls-verify=false", "-u", "bob", "-p", "wrong-password", token_registry.host, check=False
    )
    assert wrong.returncode != 0
    podman.run("login", "--tls-verify=false", "-u", "bob", "-p", USERS["bob"], token_registry.host)
    skopeo.copy(image.oci_ref, f"containers-storage:{target}")  # nothing to do with auth: a local copy
    podman.run("push", "--tls-verify=false", target)
    podman.remove_all_images()
    podman.pull(target)
    assert podman.image_inspect(target)["Id"].removeprefix("sha256:") == image.config_digest.removeprefix("sha256:")


def test_skopeo_creds(token_registry: LiveRegistry, tool_home: ToolHome, image_factory: ImageFactory) -> None:
    skopeo = Skopeo(tool_home, token_registry)
    image = image_factory.image("auth-skopeo")
    target = f"docker://{token_registry.host}/alice/skopeo-app:v1"
    with pytest.raises(ToolError):
        skopeo.copy(image.oci_ref, target, "--dest-creds", "alice:wrong-password")
    skopeo.copy(image.oci_ref, target, "--dest-creds", f"alice:{USERS['alice']}")
    assert skopeo.inspect(target, "--creds", f"alice:{USERS['alice']}")["Digest"]
    with pytest.raises(ToolError):
        skopeo.copy(
            image.oci_ref, f"docker://{token_registry.host}/alice/other:v1", "--dest-creds", f"bob:{USERS['bob']}"
        )


def oras_login(registry: LiveRegistry, tmp_path: Path, password: str) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    config = tmp_path / f"oras-{len(password)}.json"
    config.write_text('{"auths": {}}')
    with contextlib.suppress(ValueError):  # oras-py reports some refused logins by raising; the push decides
        client.login(
            username="bob", password=password, tls_verify=False, hostname=registry.host, config_path=str(config)
        )
    return client


def test_oras_basic_auth(token_registry: LiveRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = tmp_path / "notes.txt"
    artifact.write_text("hello from oras")
    target = f"{token_registry.host}/bob/notes:v1"
    wrong = oras_login(token_registry, tmp_path, "wrong-password")  # oras-py's login does not check; the push does
    with monkeypatch.context() as patch:
        patch.setattr(oras.decorator.time, "sleep", lambda _seconds: None)  # oras-py retries 5 times, 131 s of sleeps
        with pytest.raises(ValueError, match="authentication"):
            wrong.push(target=target, files=[str(artifact)], disable_path_validation=True)
    client = oras_login(token_registry, tmp_path, USERS["bob"])
    client.push(target=target, files=[str(artifact)], disable_path_validation=True)
    files = client.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert Path(files[0]).read_text() == "hello from oras"

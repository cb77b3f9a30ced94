"""docker ``config.json`` credentials: location, format, atomic 0600 writes, helpers, concurrent logins."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import credentials
from runtime.credentials import DOCKER_HUB_KEY, Credentials, CredentialsError, CredentialStore

HOST = "127.0.0.1:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def read(path: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def test_docker_config_variable_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    credentials.login(HOST, "alice", "secret")
    path = tmp_path / "cfg" / "config.json"
    assert read(path) == {"auths": {HOST: {"auth": b64("alice:secret")}}}
    assert credentials.lookup(HOST) == Credentials("alice", "secret")
    assert credentials.lookup("127.0.0.1:5001") is None


def test_default_is_dot_docker_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    credentials.login(HOST, "alice", "secret")
    path = tmp_path / ".docker" / "config.json"
    assert credentials.config_path() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.logout(HOST) is True
    assert credentials.logout(HOST) is False
    assert credentials.lookup(HOST) is None


def test_login_keeps_unrelated_keys_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    original = {
        "auths": {"registry.example": {"auth": b64("bob:pw")}, f"https://{HOST}/v1/": {"auth": b64("old:old")}},
        "HttpHeaders": {"X-Meta": "kept"},
        "psFormat": "table {{.ID}}",
        "experimental": "enabled",
    }
    path.write_text(json.dumps(original))
    path.chmod(0o644)
    inode = path.stat().st_ino
    store = CredentialStore(path)

    store.login(HOST, "alice", "secret")

    doc = read(path)
    assert doc["HttpHeaders"] == {"X-Meta": "kept"}
    assert doc["psFormat"] == "table {{.ID}}"
    assert doc["experimental"] == "enabled"
    # the old spelling of the same host (scheme and path) is replaced, not kept beside the new entry
    assert doc["auths"] == {"registry.example": {"auth": b64("bob:pw")}, HOST: {"auth": b64("alice:secret")}}
    assert path.stat().st_ino != inode, "the file must be replaced by a rename, not rewritten in place"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"], "no temp or lock file is left"

    assert store.logout(HOST) is True
    assert read(path)["auths"] == {"registry.example": {"auth": b64("bob:pw")}}
    assert read(path)["HttpHeaders"] == {"X-Meta": "kept"}


def test_a_symlinked_config_is_written_through_the_link(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "docker.json"
    target.parent.mkdir()
    target.write_text('{"auths": {}}')
    link = tmp_path / "cfg" / "config.json"
    link.parent.mkdir()
    link.symlink_to(target)

    CredentialStore(link).login(HOST, "alice", "secret")

    assert link.is_symlink()
    assert read(target)["auths"] == {HOST: {"auth": b64("alice:secret")}}


def test_identity_token_replaces_the_password(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "config.json")
    store.login(HOST, "alice", "secret", identity_token="refresh-123")
    assert read(store.path)["auths"] == {HOST: {"auth": b64("alice:"), "identitytoken": "refresh-123"}}
    found = store.lookup(HOST)
    assert found == Credentials("alice", "", "refresh-123")
    assert "refresh-123" not in repr(found)
    assert "secret" not in repr(Credentials("alice", "secret"))


@pytest.mark.parametrize(
    ("stored_key", "asked"),
    [
        (DOCKER_HUB_KEY, "docker.io"),
        (DOCKER_HUB_KEY, "index.docker.io"),
        (DOCKER_HUB_KEY, "registry-1.docker.io"),
        (f"https://{HOST}", HOST),
        (f"http://{HOST}/v2/", HOST),
        (HOST, f"https://{HOST}/"),
    ],
)
def test_keys_match_like_docker(tmp_path: Path, stored_key: str, asked: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {stored_key: {"auth": b64("u:p")}}}))
    assert CredentialStore(path).lookup(asked) == Credentials("u", "p")


def test_docker_hub_login_uses_dockers_key(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "config.json")
    store.login("docker.io", "someone", "pw")
    assert list(read(store.path)["auths"]) == [DOCKER_HUB_KEY]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"auths": {"127.0.0.1:5000": {"auth": "%%%"}}}', "not base64"),
        (json.dumps({"auths": {HOST: {"auth": b64("no-colon")}}}), "no ':'"),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(CredentialsError) as caught:
        CredentialStore(path).lookup(HOST)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_user_names_with_colons_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="may not contain ':'"):
        CredentialStore(tmp_path / "config.json").login(HOST, "a:b", "pw")


def test_empty_or_missing_file_has_no_credentials(tmp_path: Path) -> None:
    assert CredentialStore(tmp_path / "missing.json").lookup(HOST) is None
    (tmp_path / "empty.json").write_text("")
    assert CredentialStore(tmp_path / "empty.json").lookup(HOST) is None


HELPER = """#!{python}
import json, sys
store_file = {store!r}
try:
    store = json.load(open(store_file))
except FileNotFoundError:
    store = {{}}
action, data = sys.argv[1], sys.stdin.read()
if action == "get":
    if data not in store:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": data, "Username": store[data][0], "Secret": store[data][1]}}))
elif action == "store":
    doc = json.loads(data); store[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
    json.dump(store, open(store_file, "w"))
elif action == "erase":
    if data not in store:
        print("credentials not found in native keychain"); sys.exit(1)
    del store[data]; json.dump(store, open(store_file, "w"))
"""


@pytest.fixture
def helper_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real ``docker-credential-dytest`` program on PATH keeping its secrets in a JSON file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "helper-store.json"
    program = bin_dir / "docker-credential-dytest"
    program.write_text(HELPER.format(python=sys.executable, store=str(store)))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return store


def test_credential_helper_is_used_for_its_host(tmp_path: Path, helper_store: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {}, "credHelpers": {HOST: "dytest"}}))
    store = CredentialStore(path)

    store.login(HOST, "alice", "secret")
    assert json.loads(helper_store.read_text()) == {HOST: ["alice", "secret"]}
    assert read(path)["auths"] == {}, "a helper's secrets never reach the file"
    assert store.lookup(HOST) == Credentials("alice", "secret")

    store.login(HOST, "alice", "", identity_token="refresh-9")
    assert store.lookup(HOST) == Credentials("", "", "refresh-9")

    assert store.logout(HOST) is True
    assert store.lookup(HOST) is None
    assert store.logout(HOST) is False


def test_creds_store_falls_back_to_the_file(tmp_path: Path, helper_store: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {HOST: {"auth": b64("old:pw")}}, "credsStore": "dytest"}))
    assert CredentialStore(path).lookup(HOST) == Credentials("old", "pw")
    assert not helper_store.exists()


def test_missing_helper_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "not-installed-anywhere"}))
    with pytest.raises(CredentialsError, match="docker-credential-not-installed-anywhere is configured but not"):
        CredentialStore(path).lookup(HOST)


def test_concurrent_logins_from_several_processes_all_land(tmp_path: Path) -> None:
    """Eight processes log in to eight hosts at once; the directory lock keeps every entry."""
    path = tmp_path / "config.json"
    code = (
        "import sys; from pathlib import Path; from runtime.credentials import CredentialStore\n"
        "for i in range(5): CredentialStore(Path(sys.argv[1])).login(f'host{sys.argv[2]}.example', 'u', str(i))\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(n)], cwd=Path(__file__).parents[2])
        for n in range(8)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0] * 8
    auths = read(path)["auths"]
    assert sorted(auths) == sorted(f"host{n}.example" for n in range(8))  # type: ignore[call-overload]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]

"""The account commands as an admin runs them: real processes on a real (SQLite) account database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.server import run_dockyard
from tests.support.tools import require_tool

ENV = {"DOCKYARD_AUTH__MODE": "token", "DOCKYARD_AUTH__BCRYPT_ROUNDS": "4"}


def run(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_dockyard(*args, "--data", str(data), stdin=stdin, env=ENV)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_users_orgs_tokens_and_visibility(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "created user alice" in ok(run(data, "user", "add", "alice", "--password-stdin", stdin="alice-pass-1\n"))
    ok(run(data, "user", "add", "root", "--admin", "--password-stdin", stdin="root-pass-12\n"))
    fails(run(data, "user", "add", "alice", "--password-stdin", stdin="another-pass\n"), "alice")
    fails(run(data, "user", "add", "shorty", "--password-stdin", stdin="short\n"), "password")
    fails(run(data, "user", "add", "Bad Name", "--password-stdin", stdin="long-enough-1\n"), "name")
    assert ok(run(data, "user", "ls")).split() == ["alice", "root", "(admin)"]
    ok(run(data, "user", "passwd", "alice", "--password-stdin", stdin="alice-pass-2\n"))
    fails(run(data, "user", "passwd", "nobody", "--password-stdin", stdin="whatever-123\n"), "nobody")
    ok(run(data, "org", "add", "acme"))
    fails(run(data, "org", "add", "alice"), "alice")  # users and organizations share one namespace
    assert "alice is now write in acme" in ok(run(data, "org", "member", "add", "acme", "alice", "--role", "write"))
    fails(run(data, "org", "member", "add", "acme", "ghost", "--role", "read"), "ghost")
    assert "now private" in ok(run(data, "repo", "visibility", "acme/app", "private"))
    fails(run(data, "repo", "visibility", "Not..Valid", "private"), "invalid repository name")
    created = run(data, "token", "create", "--user", "alice", "--read-only")
    secret = ok(created).strip()
    assert secret.startswith("dyp_")
    token_id = created.stderr.split()[1]
    ok(run(data, "token", "rm", "--user", "alice", token_id))
    fails(run(data, "token", "rm", "--user", "alice", token_id), token_id)
    ok(run(data, "org", "member", "rm", "acme", "alice"))
    ok(run(data, "user", "rm", "alice"))
    fails(run(data, "user", "rm", "alice"), "alice")


def test_key_rotation_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ok(run(data, "key", "rotate")).split()[-1]
    second = ok(run(data, "key", "rotate")).split()[-1]
    assert first != second
    key_file = data / "auth" / "signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    fails(run(data, "key", "rotate"), "permission")


def test_import_htpasswd_from_the_real_tool(tmp_path: Path) -> None:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-B", "-b", "-C", "5", "-c", str(users), "carol", "carol-pass-1"], check=True)
    subprocess.run([htpasswd, "-B", "-b", "-C", "5", str(users), "dave", "dave-pass-12"], check=True)
    data = tmp_path / "data"
    assert "imported 2 users" in ok(run(data, "user", "import-htpasswd", str(users)))
    assert ok(run(data, "user", "ls")).split() == ["carol", "dave"]


@pytest.mark.parametrize("content", ["carol:plaintext-password\n", "not a line\n"])
def test_import_htpasswd_refuses_what_it_cannot_verify(tmp_path: Path, content: str) -> None:
    users = tmp_path / "htpasswd"
    users.write_text(content)
    result = run(tmp_path / "data", "user", "import-htpasswd", str(users))
    fails(result, "line 1")

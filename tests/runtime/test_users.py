"""runtime.users: docker's ``User`` string resolved in the container's own passwd and group files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.users import ResolvedUser, UserError, parse_group, parse_passwd, resolve_user, secure_join

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment, then a blank line

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
nohome:x:1001:1001::
+nis-entry
broken:x:notanumber:1:::
svc:x:1002:0:svc:/srv:/bin/sh
"""
GROUP = """\
root:x:0:svc
daemon:x:1:
app:x:1000:
audio:x:29:app,svc
video:x:44:daemon,app
staff:x:50:app
badgid:x:oops:app
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    return tmp_path / "rootfs"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", ResolvedUser(0, 0, (), "/root", "root")),
        ("root", ResolvedUser(0, 0, (), "/root", "root")),
        ("0", ResolvedUser(0, 0, (), "/root", "root")),
        ("app", ResolvedUser(1000, 1000, (29, 44, 50), "/home/app", "app")),
        ("1000", ResolvedUser(1000, 1000, (29, 44, 50), "/home/app", "app")),
        ("app:audio", ResolvedUser(1000, 29, (), "/home/app", "app")),
        ("app:44", ResolvedUser(1000, 44, (), "/home/app", "app")),
        ("1000:1000", ResolvedUser(1000, 1000, (), "/home/app", "app")),
        ("1000:5555", ResolvedUser(1000, 5555, (), "/home/app", "app")),
        ("4242", ResolvedUser(4242, 0, (), "/", None)),
        ("4242:4343", ResolvedUser(4242, 4343, (), "/", None)),
        ("4242:staff", ResolvedUser(4242, 50, (), "/", None)),
        ("nohome", ResolvedUser(1001, 1001, (), "/", "nohome")),
        ("svc", ResolvedUser(1002, 0, (0, 29), "/srv", "svc")),
        ("daemon", ResolvedUser(1, 1, (44,), "/usr/sbin", "daemon")),
    ],
)
def test_resolve_user(rootfs: Path, user: str, expected: ResolvedUser) -> None:
    assert resolve_user(rootfs, user) == expected


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("nobody", "unable to find user nobody: no matching entries in passwd file"),
        ("app:nogroup", "unable to find group nogroup: no matching entries in group file"),
        ("4242:nogroup", "unable to find group nogroup: no matching entries in group file"),
        ("broken", "unable to find user broken: no matching entries in passwd file"),
        ("99999999999", "uid 99999999999 is out of range"),
        ("1000:99999999999", "gid 99999999999 is out of range"),
        ("app:", "invalid user 'app:'"),
        (":app", "invalid user ':app'"),
        ("-1", "unable to find user -1"),
    ],
)
def test_resolve_user_errors_are_one_line(rootfs: Path, user: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        resolve_user(rootfs, user)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_numeric_ids_need_no_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_user(empty, "") == ResolvedUser(0, 0, (), "/", None)
    assert resolve_user(empty, "1000:1000") == ResolvedUser(1000, 1000, (), "/", None)
    with pytest.raises(UserError, match="unable to find user app"):
        resolve_user(empty, "app")


def test_the_hosts_files_are_never_read(tmp_path: Path) -> None:
    """An image whose /etc/passwd links to the absolute /etc/passwd still reads its own file."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "usr" / "lib").mkdir(parents=True)
    (rootfs / "usr" / "lib" / "passwd").write_text("inside:x:7:7::/in:/bin/sh\n")
    os.symlink("/usr/lib/passwd", rootfs / "etc" / "passwd")
    (rootfs / "usr" / "lib" / "group").write_text("insiders:x:77:inside\n")
    os.symlink("../../../../../../usr/lib/group", rootfs / "etc" / "group")
    assert resolve_user(rootfs, "inside") == ResolvedUser(7, 7, (77,), "/in", "inside")
    with pytest.raises(UserError, match="unable to find user root"):
        resolve_user(rootfs, "root")  # the host has root; this container does not


def test_a_directory_as_passwd_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc" / "passwd").mkdir(parents=True)
    with pytest.raises(UserError, match="not a regular file"):
        resolve_user(tmp_path, "app")


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/group", tmp_path / "etc" / "passwd")
    os.symlink("/etc/passwd", tmp_path / "etc" / "group")
    with pytest.raises(UserError, match="too many levels of symbolic links"):
        resolve_user(tmp_path, "app")


@pytest.mark.parametrize(
    ("links", "path", "expected"),
    [
        ({}, "/etc/passwd", "etc/passwd"),
        ({}, "../../etc/passwd", "etc/passwd"),
        ({"etc": "/private/etc"}, "/etc/passwd", "private/etc/passwd"),
        ({"etc": "../../../../private"}, "/etc/passwd", "private/passwd"),
        ({"a": "b/c", "b": "/x"}, "/a/d", "x/c/d"),
    ],
)
def test_secure_join_stays_inside(tmp_path: Path, links: dict[str, str], path: str, expected: str) -> None:
    for name, target in links.items():
        os.symlink(target, tmp_path / name)
    assert secure_join(tmp_path, path) == tmp_path / expected


def test_parsers_skip_malformed_lines() -> None:
    assert [e.name for e in parse_passwd(PASSWD)] == ["root", "daemon", "app", "nohome", "svc"]
    assert [e.name for e in parse_group(GROUP)] == ["root", "daemon", "app", "audio", "video", "staff"]
    assert parse_group(GROUP)[3].members == ("app", "svc")

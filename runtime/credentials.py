"""Registry credentials in docker's ``config.json``, shared with docker, podman and skopeo.

The file is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``)::

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")},
               "registry.example": {"auth": base64("user:"), "identitytoken": "<refresh token>"}},
     "credHelpers": {"gcr.io": "gcloud"}, "credsStore": "pass", ...}

- An ``identitytoken`` is an OAuth2 refresh token (what ``docker login`` keeps instead of the password when the
  token service hands one out); clients trade it for access tokens with the ``refresh_token`` grant.
- ``credHelpers`` (per host) and ``credsStore`` (everything else) name an external ``docker-credential-NAME``
  program; it is asked first and the file's ``auths`` are the fallback, as docker does. The helper protocol:
  ``get`` reads the host on stdin and prints ``{"Username", "Secret"}`` (``Username`` ``<token>`` marks an
  identity token); ``store`` reads ``{"ServerURL", "Username", "Secret"}``; ``erase`` reads the host.
- Keys are matched like docker does: exactly, then by host name with any ``http(s)://`` and path removed. Docker
  Hub's key is ``https://index.docker.io/v1/``.

Writes keep every unrelated key of the file, happen under an exclusive ``flock`` of the config directory (two
concurrent logins never lose each other's entry) and are atomic: a temp file in the same directory, mode 0600,
fsynced, then renamed over the file (over its target when the file is a symlink). Problems raise
:class:`CredentialsError` with one line naming the file or helper.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_TOKEN_USER = "<token>"
_HELPER_TIMEOUT = 30.0


class CredentialsError(Exception):
    """The config file or a credential helper could not be read or written (one-line message)."""


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with: a password, or an identity (refresh) token, or both."""

    username: str
    password: str = ""
    identity_token: str | None = None

    def __repr__(self) -> str:  # never print secrets by accident
        token = "***" if self.identity_token else None
        return f"Credentials(username={self.username!r}, password=***, identity_token={token})"


def config_dir() -> Path:
    """``$DOCKER_CONFIG`` when set, else ``~/.docker``."""
    configured = os.environ.get("DOCKER_CONFIG")
    return Path(configured) if configured else Path.home() / ".docker"


def config_path() -> Path:
    """The default ``config.json``."""
    return config_dir() / "config.json"


def hostname_of(server: str) -> str:
    """Docker's ``ConvertToHostname``: ``https://host:5000/v1/`` → ``host:5000``."""
    text = server.removeprefix("https://").removeprefix("http://")
    return text.partition("/")[0]


def auth_key(host: str) -> str:
    """The ``auths`` key docker uses for ``host`` (Docker Hub's hosts share ``https://index.docker.io/v1/``)."""
    name = hostname_of(host)
    return DOCKER_HUB_KEY if name in _DOCKER_HUB_HOSTS else name


class CredentialStore:
    """The credentials of one ``config.json`` (default: :func:`config_path`, read at each call)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_path()

    # -- reading ------------------------------------------------------------------------------------

    def lookup(self, host: str) -> Credentials | None:
        """The credentials for ``host`` (from its helper first, then ``auths``), or None."""
        config = self._read()
        helper = _helper_for(config, auth_key(host))
        if helper is not None:
            found = _helper_get(helper, auth_key(host))
            if found is not None:
                return found
        entry = _find_entry(config.get("auths"), host)
        return None if entry is None else self._decode(host, entry)

    def _decode(self, host: str, entry: dict[str, Any]) -> Credentials | None:
        username, password = "", ""
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise CredentialsError(f"{self.path}: the auth entry of {host} is not base64 user:password") from None
            if not sep:
                raise CredentialsError(f"{self.path}: the auth entry of {host} has no ':' between user and password")
        elif isinstance(entry.get("username"), str):
            username, password = str(entry["username"]), str(entry.get("password", ""))
        token = entry.get("identitytoken")
        identity = token if isinstance(token, str) and token else None
        if not username and not password and identity is None:
            return None
        return Credentials(username, password, identity)

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialsError(f"cannot read {self.path}: {exc.strerror}") from None
        if not text.strip():
            return {}
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CredentialsError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
            raise CredentialsError(f"{self.path}: expected a JSON object with an 'auths' object")
        return doc

    # -- writing ------------------------------------------------------------------------------------

    def login(self, host: str, username: str, password: str, identity_token: str | None = None) -> None:
        """Store credentials for ``host``. With an ``identity_token`` the password is not kept (docker's habit)."""
        if ":" in username:
            raise CredentialsError(f"a user name may not contain ':' ({username!r})")
        key = auth_key(host)
        with self._locked():
            config = self._read()
            helper = _helper_for(config, key)
            if helper is not None:
                secret_user = _TOKEN_USER if identity_token else username
                _helper_store(helper, key, secret_user, identity_token or password)
                return
            secret = "" if identity_token else password
            entry: dict[str, Any] = {"auth": base64.b64encode(f"{username}:{secret}".encode()).decode()}
            if identity_token:
                entry["identitytoken"] = identity_token
            auths = _drop_entries(config.get("auths"), host)
            auths[key] = entry
            config["auths"] = auths
            self._write(config)

    def logout(self, host: str) -> bool:
        """Forget the credentials of ``host``; False when there were none."""
        key = auth_key(host)
        with self._locked():
            config = self._read()
            removed = False
            helper = _helper_for(config, key)
            if helper is not None:
                removed = _helper_erase(helper, key)
            auths = config.get("auths") or {}
            kept = _drop_entries(auths, host)
            if len(kept) != len(auths):
                config["auths"] = kept
                self._write(config)
                removed = True
            return removed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive flock on the config directory (no lock file is left behind)."""
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CredentialsError(f"cannot use {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, config: dict[str, Any]) -> None:
        target = self.path.resolve() if self.path.is_symlink() else self.path
        data = (json.dumps(config, indent="\t") + "\n").encode()
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            raise CredentialsError(f"cannot write {target}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CredentialsError(f"cannot write {target}: {exc.strerror}") from None


def _find_entry(auths: Any, host: str) -> dict[str, Any] | None:
    """Docker's lookup: the exact key, else the first key with the same host name."""
    if not isinstance(auths, dict):
        return None
    key = auth_key(host)
    candidates = [key, host] + [k for k in auths if auth_key(k) == key]
    for candidate in candidates:
        entry = auths.get(candidate)
        if isinstance(entry, dict):
            return entry
    return None


def _drop_entries(auths: Any, host: str) -> dict[str, Any]:
    """``auths`` without any key that names ``host`` (``https://host``, ``host/v1/``...)."""
    key = auth_key(host)
    return {k: v for k, v in (auths or {}).items() if auth_key(k) != key}


def _helper_for(config: dict[str, Any], key: str) -> str | None:
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for name, helper in helpers.items():
            if auth_key(name) == key and isinstance(helper, str) and helper:
                return helper
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    binary = shutil.which(program)
    if binary is None:
        raise CredentialsError(f"credential helper {program} is configured but not installed")
    try:
        return subprocess.run(
            [binary, action], input=stdin, capture_output=True, text=True, timeout=_HELPER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialsError(f"credential helper {program} {action} failed: {exc}") from None


def _helper_failed(helper: str, action: str, result: subprocess.CompletedProcess[str]) -> CredentialsError:
    detail = (result.stderr or result.stdout).strip().splitlines()
    reason = detail[-1] if detail else f"exit status {result.returncode}"
    return CredentialsError(f"credential helper docker-credential-{helper} {action} failed: {reason}")


def _not_found(result: subprocess.CompletedProcess[str]) -> bool:
    return "credentials not found" in (result.stdout + result.stderr).lower()


def _helper_get(helper: str, key: str) -> Credentials | None:
    result = _run_helper(helper, "get", key)
    if result.returncode != 0:
        if _not_found(result):
            return None
        raise _helper_failed(helper, "get", result)
    try:
        doc = json.loads(result.stdout)
        username, secret = str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(f"credential helper docker-credential-{helper} printed no credentials") from None
    if username == _TOKEN_USER:
        return Credentials("", "", secret)
    return Credentials(username, secret)


def _helper_store(helper: str, key: str, username: str, secret: str) -> None:
    payload = json.dumps({"ServerURL": key, "Username": username, "Secret": secret})
    result = _run_helper(helper, "store", payload)
    if result.returncode != 0:
        raise _helper_failed(helper, "store", result)


def _helper_erase(helper: str, key: str) -> bool:
    result = _run_helper(helper, "erase", key)
    if result.returncode != 0:
        if _not_found(result):
            return False
        raise _helper_failed(helper, "erase", result)
    return True


def lookup(host: str) -> Credentials | None:
    """The credentials for ``host`` in the default ``config.json`` (or its helpers), or None."""
    return CredentialStore().lookup(host)


def login(host: str, username: str, password: str, identity_token: str | None = None) -> None:
    """Store credentials for ``host`` in the default ``config.json`` (or its helper)."""
    CredentialStore().login(host, username, password, identity_token)


def logout(host: str) -> bool:
    """Remove the credentials of ``host`` from the default ``config.json``; False when there were none."""
    return CredentialStore().logout(host)

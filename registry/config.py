"""The whole configuration as one typed tree, loaded once: defaults < YAML file < ``DOCKYARD_*`` env < CLI flags.

Environment variables use the prefix ``DOCKYARD_`` and ``__`` for nesting, e.g.
``DOCKYARD_STORAGE__ROOT=/srv/registry`` or ``DOCKYARD_LISTEN=0.0.0.0:5000``.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, IPvAnyNetwork, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from storage.s3_settings import S3Settings

MiB = 1 << 20
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("dockyard_config_file", default=None)


class ConfigError(Exception):
    """The configuration is unusable; the message is one readable line."""


_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``90``, ``90s``, ``15m``, ``1h30m`` or ``7d``."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif text and re.fullmatch(f"\\d+(?:\\.\\d+)?|{_DURATION_RE.pattern}+", text):
        seconds = float(text) if text[-1].isdigit() else sum(float(n) * _UNIT[u] for n, u in _DURATION_RE.findall(text))
    else:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 30s, 15m, 1h30m, 7d)")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class FilesystemStorage(BaseModel):
    """Blobs and metadata in a local directory (the embedded default)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["filesystem"] = "filesystem"
    root: Path = Path("./dockyard-data")
    fsync_metadata: bool = Field(False, description="fsync small records too (blobs are always fsynced)")


class MemoryStorage(BaseModel):
    """Everything in process memory: for tests and demos only."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["memory"] = "memory"


class S3Storage(S3Settings):
    """Blobs and metadata in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...)."""

    type: Literal["s3"] = "s3"


StorageConfig = Annotated[FilesystemStorage | MemoryStorage | S3Storage, Field(discriminator="type")]


class GcSettings(BaseModel):
    """Garbage collection inside ``dockyard serve`` (``interval: 0`` turns it off) and defaults of ``dockyard gc``."""

    model_config = ConfigDict(extra="forbid")
    interval: Duration = Field(0.0, description="run GC this often inside serve; 0 = never")
    grace: Duration = Field(3600.0, description="nothing written or used more recently is deleted")
    delete_untagged: bool = Field(False, description="also delete manifests no tag, index or referrer keeps")
    upload_max_age: Duration = Field(7 * 86400.0, description="upload sessions older than this are purged")


class AuthSettings(BaseModel):
    """Who may do what. ``none``: the open registry. ``token``: accounts and the built-in token service."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["none", "token"] = "none"
    public_url: str | None = Field(None, description="URL clients reach the registry at (default http://<listen>)")
    service: str = Field("dockyard", description="the token audience, `service` in challenges")
    issuer: str = Field("dockyard", description="`iss` of issued tokens")
    state_dir: Path | None = Field(None, description="signing key and SQLite database (default: storage.root)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in state_dir")
    key_path: Path | None = Field(None, description="ES256 signing key (default <state_dir>/auth/signing-key.pem)")
    key_overlap: Duration = Field(3600.0, description="a rotated-out key still verifies tokens this long")
    token_lifetime: Duration = Field(300.0, gt=0)
    refresh_lifetime: Duration = Field(30 * 86400.0, gt=0)
    default_visibility: Literal["public", "private"] = "public"
    admin_only_top_level: bool = Field(True, description="names without a namespace (busybox) need a site admin")
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    login_failures: int = Field(5, gt=0, description="failed logins per client or account before 429")
    login_window: Duration = Field(300.0, gt=0, description="how long failed logins are remembered")

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+(/[^\s]*)?", value):
            raise ValueError(f"public_url must be an http(s) URL, got {value!r}")
        return value.rstrip("/") if value else value


class LimitsSettings(BaseModel):
    """Protection against slow and abusive clients (``registry/limits.py``). A limit of 0 is off.

    Counters are kept per client address (the peer, or ``X-Forwarded-For`` from a trusted proxy) in this
    process; they expire, so their memory stays bounded."""

    model_config = ConfigDict(extra="forbid")
    header_timeout: Duration = Field(
        75.0,
        gt=0,
        description="a connection must send a complete request head this soon after it opens or "
        "after its previous response, else it is closed (also the keep-alive idle timeout)",
    )
    body_timeout: Duration = Field(
        60.0,
        ge=0,
        description="a request body that stalls this long (no bytes while the server waits) is "
        "ended with 408; its upload session stays resumable; 0 = never",
    )
    max_header_size: int = Field(16384, ge=1024, description="bytes of the request line or of one header field")
    upload_sessions_per_client: int = Field(
        1000, ge=0, description="open upload sessions per client address; over it POST answers 429"
    )
    upload_session_idle: Duration = Field(
        900.0, gt=0, description="an unfinished session no request touched this long stops counting"
    )
    requests_per_second: float = Field(0.0, ge=0, description="sustained requests per client address; 0 = no limit")
    burst: int = Field(200, gt=0, description="requests a client may make at once above requests_per_second")


class TlsSettings(BaseModel):
    """HTTPS served by dockyard itself (``dockyard certs selfsigned`` makes a pair for a quick start)."""

    model_config = ConfigDict(extra="forbid")
    cert: Path = Field(description="PEM certificate chain")
    key: Path = Field(description="PEM private key")


class Settings(BaseSettings):
    """Every setting of ``dockyard serve``."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", env_nested_delimiter="__", extra="forbid")

    listen: str = "127.0.0.1:5000"
    workers: int = Field(0, ge=0, le=256, description="worker processes sharing the port; 0 = one per CPU core")
    storage: StorageConfig = FilesystemStorage()
    max_manifest_size: int = Field(4 * MiB, gt=0)
    delete_enabled: bool = True
    auto_mount: bool = Field(True, description="mount a blob the registry already has when POST names no 'from'")
    page_size_max: int = Field(10_000, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    gc: GcSettings = GcSettings()
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings | None = None
    limits: LimitsSettings = LimitsSettings()
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="proxies (addresses or CIDR networks) whose X-Forwarded-Proto/Host/For headers are believed",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value

    @property
    def public_url(self) -> str:
        """The base URL clients use: ``auth.public_url``, else ``http(s)://<listen>``."""
        return self.auth.public_url or f"{'https' if self.tls else 'http'}://{self.listen}"

    @property
    def state_dir(self) -> Path:
        """Local state (signing key, SQLite): ``auth.state_dir``, else the filesystem storage root."""
        if self.auth.state_dir is not None:
            return self.auth.state_dir
        return self.storage.root if isinstance(self.storage, FilesystemStorage) else Path("./dockyard-state")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by :func:`load_settings` (lowest priority above the defaults)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _CONFIG_FILE.get()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}".replace("\n", " ")) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load the settings; raise :class:`ConfigError` with one readable line when they are invalid."""
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"invalid configuration: {where}: {first['msg']}") from None
    finally:
        _CONFIG_FILE.reset(token)

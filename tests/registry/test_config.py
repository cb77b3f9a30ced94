"""Configuration precedence: defaults < YAML file < DOCKYARD_* env < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import ConfigError, FilesystemStorage, MemoryStorage, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCKYARD_LISTEN", "DOCKYARD_STORAGE__TYPE", "DOCKYARD_STORAGE__ROOT"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.listen == "127.0.0.1:5000"
    assert isinstance(settings.storage, FilesystemStorage)
    assert settings.storage.root == Path("./dockyard-data")
    assert settings.max_manifest_size == 4 << 20


def test_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yml"
    config.write_text("listen: 127.0.0.1:6000\nmax_manifest_size: 1000\nstorage:\n  type: memory\n")
    settings = load_settings(config)
    assert (settings.port, settings.max_manifest_size, settings.storage.type) == (6000, 1000, "memory")
    monkeypatch.setenv("DOCKYARD_LISTEN", "127.0.0.1:7000")
    monkeypatch.setenv("DOCKYARD_STORAGE__TYPE", "filesystem")
    monkeypatch.setenv("DOCKYARD_STORAGE__ROOT", str(tmp_path / "env"))
    settings = load_settings(config)
    assert settings.port == 7000
    assert isinstance(settings.storage, FilesystemStorage)
    assert settings.storage.root == tmp_path / "env"
    assert load_settings(config, listen="127.0.0.1:8000").port == 8000
    cli = load_settings(config, storage={"type": "filesystem", "root": tmp_path / "cli"}).storage
    assert isinstance(cli, FilesystemStorage)
    assert cli.root == tmp_path / "cli"
    monkeypatch.delenv("DOCKYARD_STORAGE__ROOT")
    assert isinstance(load_settings(config, storage={"type": "memory"}).storage, MemoryStorage)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("listen: nope\n", "listen"),
        ("storage:\n  type: floppy\n", "storage"),
        ("unknown_key: 1\n", "unknown_key"),
        ("- a list\n", "mapping"),
        ("listen: [\n", "YAML"),
    ],
)
def test_invalid_config_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "c.yml"
    config.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yml")

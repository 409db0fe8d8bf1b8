"""temporal-dev.yml: the local stack's settings, validated, with a clear error naming a bad field.

Its values reach a process through the settings tree (infra/settings.py), never through os.environ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infra.config_files import ConfigFileError, load_yaml

CONFIG_ENV = "INCIDENTS_DEV_CONFIG"
FILE_NAME = "temporal-dev.yml"
Port = int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlitePragmas(_Strict):
    """The pragmas the dev server passes to SQLite. It accepts any name silently, so a typo is caught here.
    Null leaves SQLite's own default (journal_mode=delete, synchronous=full)."""

    journal_mode: Literal["delete", "truncate", "persist", "memory", "wal", "off"] | None = "wal"
    synchronous: Literal["off", "normal", "full", "extra"] | None = "normal"

    def as_flags(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class TemporalSettings(_Strict):
    host: str = "127.0.0.1"
    port: Port = Field(default=7233, ge=1, le=65535)
    ui_port: Port = Field(default=8233, ge=1, le=65535)
    db_file: str = "temporal.sqlite"
    log_level: Literal["debug", "info", "warn", "error"] = "warn"
    sqlite_pragmas: SqlitePragmas = SqlitePragmas()


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: Port = Field(default=8080, ge=1, le=65535)


class SandboxSettings(_Strict):
    host: str = "127.0.0.1"
    payments_port: Port = Field(default=8081, ge=1, le=65535)
    notify_port: Port = Field(default=8082, ge=1, le=65535)


class WorkerDevSettings(_Strict):
    metrics_port: Port = Field(default=9464, ge=1, le=65535)


class CodecServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: Port = Field(default=8083, ge=1, le=65535)


class DevConfig(_Strict):
    namespace: str = "default"
    data_dir: str = "data"
    temporal: TemporalSettings = TemporalSettings()
    api: ApiSettings = ApiSettings()
    sandboxes: SandboxSettings = SandboxSettings()
    worker: WorkerDevSettings = WorkerDevSettings()
    codec_server: CodecServerSettings = CodecServerSettings()
    webhook_secret: str = Field(default="dev-only-webhook-secret", min_length=8)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    path: Path | None = Field(default=None, exclude=True)

    @property
    def data_path(self) -> Path:
        base = self.path.parent if self.path is not None else Path.cwd()
        return (base / self.data_dir).resolve()

    @property
    def temporal_address(self) -> str:
        return f"{self.temporal.host}:{self.temporal.port}"

    @property
    def codec_keys_file(self) -> Path:
        return self.data_path / "codec-keys.yml"

    @property
    def tokens_file(self) -> Path:
        return self.data_path / "api-tokens.yml"


class DevConfigError(ConfigFileError):
    pass


def find_config_file(start: Path | None = None, named: str | Path | None = None) -> Path | None:
    """The file `named` (INCIDENTS_DEV_CONFIG), else temporal-dev.yml in this directory or a parent (the checkout)."""
    if named:
        return Path(named)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.exists():
            return candidate
    return None


def load_dev_config(path: Path | None = None) -> DevConfig:
    """The settings in `path`; the defaults when there is no file."""
    if path is None:
        return DevConfig()
    return load_yaml(path, DevConfig, what="the settings file", error=DevConfigError, empty={}, extra={"path": path})

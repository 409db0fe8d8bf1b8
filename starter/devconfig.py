"""temporal-dev.yml, as the starter's modules and the tests have always imported it (it lives in infra/devconfig.py:
every process's settings tree reads it)."""

from __future__ import annotations

from infra.devconfig import (
    CONFIG_ENV,
    FILE_NAME,
    ApiSettings,
    CodecServerSettings,
    DevConfig,
    DevConfigError,
    SandboxSettings,
    SqlitePragmas,
    TemporalSettings,
    WorkerDevSettings,
    find_config_file,
    load_dev_config,
)

__all__ = [
    "CONFIG_ENV",
    "FILE_NAME",
    "ApiSettings",
    "CodecServerSettings",
    "DevConfig",
    "DevConfigError",
    "SandboxSettings",
    "SqlitePragmas",
    "TemporalSettings",
    "WorkerDevSettings",
    "find_config_file",
    "load_dev_config",
]

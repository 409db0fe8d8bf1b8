"""The settings tree: everything a process is configured with, read once at its start and passed down.

A process's entry point calls `Settings.load()` and hands the result to the code that needs it (the
worker, the API, the codec server, the CLI's commands); no other module reads os.environ, and nothing
writes to it (tests/unit/test_settings.py checks both).

Where the values come from, the environment winning:
- the environment, under the names docs/configuration.md documents (TEMPORAL_ADDRESS, INCIDENT_POLICY,
  INCIDENTS_API_TOKENS_FILE, INCIDENTS_CODEC_KEYS_FILE, INCIDENTS_LOG_FORMAT, OTEL_*, ...);
- temporal-dev.yml: the file INCIDENTS_DEV_CONFIG (or `incidents dev --config`) names, else the one in
  this directory or a parent (the checkout).
  - Found or named, it says where the `make run` stack is: its Temporal address and namespace, and the
    key file under its data folder (when that exists), unless TEMPORAL_ADDRESS or a temporal.toml
    profile names another server (then neither its address nor its keys are that server's); and its
    HTTP API's address (the CLI's actions go there), unless INCIDENTS_API_URL names another.
  - Named, as the dev stack names it to its children, it also gives the sandboxes' URLs, the webhook
    secret and the log format and level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.devconfig import CONFIG_ENV, DevConfig, find_config_file, load_dev_config

LogFormat = Literal["console", "json"]


def _env(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    dev_config_file: Path | None = _env(CONFIG_ENV)
    # Temporal: what is not here (TLS, API key, temporal.toml profiles) temporalio.envconfig reads itself.
    temporal_address: str | None = _env("TEMPORAL_ADDRESS")
    temporal_namespace: str | None = _env("TEMPORAL_NAMESPACE")
    policy_file: Path | None = _env("INCIDENT_POLICY")
    # More policy files a worker knows (os.pathsep-separated), beside INCIDENT_POLICY and the shipped default.
    more_policy_files: str | None = _env("INCIDENT_POLICIES")
    api_tokens_file: Path | None = _env("INCIDENTS_API_TOKENS_FILE")
    codec_keys_file: Path | None = _env("INCIDENTS_CODEC_KEYS_FILE")
    task_queue: str | None = _env("INCIDENTS_TASK_QUEUE")
    api_answer_timeout: str | None = _env("INCIDENTS_API_ANSWER_TIMEOUT")  # the API checks it, naming it
    # How often the desk lists every running incident to catch changes made around the API (docs/operating.md).
    desk_reconcile_seconds: str | None = _env("INCIDENTS_DESK_RECONCILE_SECONDS")  # the API checks it, naming it
    log_format: LogFormat | None = _env("INCIDENTS_LOG_FORMAT")
    log_level: str | None = _env("INCIDENTS_LOG_LEVEL")
    otlp_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_service_name: str | None = _env("OTEL_SERVICE_NAME")
    pycache_dir: Path | None = _env("INCIDENTS_PYCACHE")
    payments_url: str | None = _env("PAYMENTS_URL")
    notify_url: str | None = _env("NOTIFY_URL")
    webhook_secret: SecretStr | None = _env("WEBHOOK_SECRET")
    webhook_secret_file: Path | None = _env("WEBHOOK_SECRET_FILE")  # wins over WEBHOOK_SECRET; re-read on change
    # A receiver's (`incidents sandbox notify`) previous secret, accepted beside the current during a rotation.
    webhook_previous_secret: SecretStr | None = _env("WEBHOOK_PREVIOUS_SECRET")
    webhook_previous_secret_file: Path | None = _env("WEBHOOK_PREVIOUS_SECRET_FILE")  # wins; re-read; absent: none
    # The CLI's agent actions go through the HTTP API there, with the bearer token this file holds.
    api_url: str | None = _env("INCIDENTS_API_URL")
    token_file: Path | None = _env("INCIDENTS_TOKEN_FILE")
    # The agent desk's secret (signs its sessions and the customers' ticket links); see starter/desk/secrets.py.
    desk_secret_file: Path | None = _env("INCIDENTS_DESK_SECRET_FILE")
    # Where customers reach the API (its ticket pages), for the link in their "ticket opened" message.
    public_url: str | None = _env("INCIDENTS_PUBLIC_URL")

    # Not from the environment: what load() found.
    dev: DevConfig | None = Field(default=None, exclude=True)  # the temporal-dev.yml in effect
    external_temporal: bool = Field(default=False, exclude=True)  # another server is named

    @classmethod
    def load(cls, config_file: str | Path | None = None, cwd: Path | None = None) -> Settings:
        """The process's settings: the environment over temporal-dev.yml. Raises DevConfigError (naming the
        file and field) for a temporal-dev.yml that cannot be used."""
        env = cls()
        named = config_file or env.dev_config_file
        path = find_config_file(cwd, named=named)
        dev = load_dev_config(path) if path is not None else None
        external = env.temporal_address is not None or _temporal_profile_names_a_server()
        given = env.model_fields_set
        defaults: dict[str, Any] = {"dev": dev, "external_temporal": external}
        if dev is not None and not external:
            defaults["temporal_address"] = dev.temporal_address
            defaults["temporal_namespace"] = dev.namespace  # the only one the dev stack's server serves
            if dev.codec_keys_file.exists():
                defaults["codec_keys_file"] = dev.codec_keys_file
        if dev is not None:
            # The `make run` stack's API, whichever Temporal server it uses.
            host = "127.0.0.1" if dev.api.host in ("0.0.0.0", "::", "") else dev.api.host
            defaults["api_url"] = f"http://{host}:{dev.api.port}"
        if dev is not None and named:
            s = dev.sandboxes
            defaults["payments_url"] = f"http://{s.host}:{s.payments_port}"
            defaults["notify_url"] = f"http://{s.host}:{s.notify_port}/notifications"
            defaults["webhook_secret"] = SecretStr(dev.webhook_secret)
            defaults["log_format"] = dev.log_format
            defaults["log_level"] = dev.log_level.upper()
        if path is not None:
            defaults["dev_config_file"] = path
        return env.model_copy(update={k: v for k, v in defaults.items() if k not in given or k == "dev"})

    @property
    def config(self) -> DevConfig:
        """temporal-dev.yml's values (its defaults when there is none)."""
        return self.dev or DevConfig()

    @property
    def tracing_endpoint(self) -> str | None:
        return self.otlp_endpoint or self.otlp_traces_endpoint


def _temporal_profile_names_a_server() -> bool:
    """True when a temporal.toml profile names a server (the environment's TEMPORAL_ADDRESS is checked apart)."""
    from temporalio.envconfig import ClientConfig

    try:
        return bool(ClientConfig.load_client_connect_config(disable_env=True).get("target_host"))
    except Exception:  # an unreadable config file is reported when connecting, not here
        return False

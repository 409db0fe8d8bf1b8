"""One settings tree per process: the environment over temporal-dev.yml, read once at the entry point and
passed down; one YAML loader whose errors name the file and the field; nothing reads or writes os.environ
outside the settings modules and the process entry points."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.codec import load_keys
from infra.devconfig import load_dev_config
from infra.settings import Settings
from starter.auth import load_tokens
from tests.sandbox_servers import free_port
from workers.settings import worker_settings
from workflows.domain.policy import load_policy_file

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("infra", "workflows", "activities", "workers", "starter", "sandboxes", "bench")
# Each may touch the environment, and says why.
ALLOWED = {
    "infra/processes.py": "children inherit this process's environment plus what it passes them",
    "sandboxes/payments.py": "the stand-in's fault switches (SANDBOX_*), read when its app is made",
    "sandboxes/notifications.py": "the stand-in's fault switches (SANDBOX_*), read when its app is made",
    "bench/bare_worker.py": "the benchmark's own process entry point",
    "bench/memory_probe.py": "the memory probe's own worker processes (it runs itself as their entry point)",
}
ENVIRON = re.compile(r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import\b.*\benviron\b")


def _strip_comments_and_docstrings(text: str) -> str:
    text = re.sub(r'("""|\'\'\')(.|\n)*?\1', "", text)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_no_module_outside_the_settings_and_entry_points_touches_os_environ():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in ALLOWED:
                continue
            for line in _strip_comments_and_docstrings(path.read_text()).splitlines():
                if ENVIRON.search(line):
                    found.append(f"{name}: {line.strip()}")
    assert not found, "read the setting in infra/settings.py and pass it down:\n" + "\n".join(found)


def _dev_config(folder: Path, **overrides: object) -> Path:
    config = {
        "data_dir": str(folder / "data"),
        "temporal": {"port": free_port()},
        "sandboxes": {"payments_port": free_port(), "notify_port": free_port()},
        "webhook_secret": "from-the-yml-file",
        "log_format": "console",
        "log_level": "debug",
        **overrides,
    }
    path = folder / "temporal-dev.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_named_dev_config_configures_the_process_and_the_environment_wins(tmp_path: Path, clean_env):
    path = _dev_config(tmp_path)
    config = load_dev_config(path)
    clean_env.setenv("INCIDENTS_DEV_CONFIG", str(path))
    clean_env.setenv("PAYMENTS_URL", "http://payments.example:1")
    clean_env.setenv("INCIDENTS_LOG_FORMAT", "json")

    settings = Settings.load()

    assert settings.temporal_address == config.temporal_address and settings.temporal_namespace == "default"
    assert settings.payments_url == "http://payments.example:1", "the environment wins over the file"
    assert settings.notify_url == f"http://127.0.0.1:{config.sandboxes.notify_port}/notifications"
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    worker = worker_settings(settings)
    assert worker.payments_url == "http://payments.example:1" and worker.notify_url == settings.notify_url
    assert worker.webhook_secret.get_secret_value() == "from-the-yml-file"


def test_a_dev_config_found_in_the_checkout_only_says_where_the_stack_is(tmp_path: Path, clean_env):
    config = load_dev_config(_dev_config(tmp_path))
    config.data_path.mkdir()
    config.codec_keys_file.write_text("present")
    below = tmp_path / "somewhere" / "below"
    below.mkdir(parents=True)

    found = Settings.load(cwd=below)
    assert found.temporal_address == config.temporal_address and found.codec_keys_file == config.codec_keys_file
    assert found.payments_url is None and found.log_format is None and found.webhook_secret is None

    clean_env.setenv("TEMPORAL_ADDRESS", "elsewhere.example:7233")
    elsewhere = Settings.load(cwd=below)
    assert elsewhere.external_temporal and elsewhere.temporal_address == "elsewhere.example:7233"
    assert elsewhere.temporal_namespace is None and elsewhere.codec_keys_file is None, "not that server's keys"


def test_the_cli_passes_the_dev_stack_down_and_never_writes_os_environ(
    tmp_path: Path, clean_env, capsys: pytest.CaptureFixture[str]
):
    from starter import cli

    path = _dev_config(tmp_path)
    port = yaml.safe_load(path.read_text())["temporal"]["port"]  # nothing listens there
    clean_env.chdir(tmp_path)
    exits: list[int] = []

    def record_exit(code: int) -> None:
        exits.append(code)

    clean_env.setattr("infra.exiting.exit_process", record_exit)
    before = dict(os.environ)

    cli.main(["show", "INC-7F3K2Q"])

    assert exits == [1]
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in capsys.readouterr().err, "the yml's stack was tried"
    assert dict(os.environ) == before, "the CLI wrote to os.environ"


@pytest.mark.parametrize(
    ("kind", "text", "field"),
    [
        ("dev config", "api: {port: not-a-port}\n", "api.port"),
        ("policy", "name: p\nseverities: {P1: {first_response: soon}}\n", "severities"),
        ("codec keys", "active: k1\nkeys: {k1: not-base64!}\n", "keys"),
        ("api tokens", "ops-bot: {role: boss, sha256: " + "0" * 64 + "}\n", "ops-bot.role"),
    ],
)
def test_every_yaml_file_is_refused_naming_the_file_and_the_field(tmp_path: Path, kind: str, text: str, field: str):
    loaders: dict[str, Callable[[Path], object]] = {
        "dev config": load_dev_config,
        "policy": load_policy_file,
        "codec keys": load_keys,
        "api tokens": load_tokens,
    }
    path = tmp_path / f"{kind.replace(' ', '-')}.yml"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        loaders[kind](path)
    assert str(refused.value).startswith(f"{path}: ") and field in str(refused.value), refused.value


@pytest.mark.parametrize("loader", [load_dev_config, load_policy_file, load_keys, load_tokens])
def test_every_yaml_file_that_cannot_be_read_or_parsed_is_refused_naming_it(tmp_path: Path, loader):
    missing = tmp_path / "missing.yml"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(missing))}: cannot read"):
        loader(missing)
    broken = tmp_path / "broken.yml"
    broken.write_text("a: [\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(broken))}: not valid YAML"):
        loader(broken)

"""Who the CLI acts as, without a server: the API address from the settings, the dev agents' credentials."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from infra.settings import Settings
from starter.auth import Role, TokenConfigError, dev_credential, load_tokens, write_dev_credentials, write_dev_tokens


def test_the_api_url_is_the_dev_stack_s_unless_the_environment_names_one(tmp_path: Path, clean_env):
    config = tmp_path / "temporal-dev.yml"
    config.write_text(yaml.safe_dump({"api": {"host": "0.0.0.0", "port": 18080}}))
    clean_env.setenv("INCIDENTS_DEV_CONFIG", str(config))
    assert Settings.load().api_url == "http://127.0.0.1:18080"
    clean_env.setenv("INCIDENTS_API_URL", "https://incidents.example")
    clean_env.setenv("INCIDENTS_TOKEN_FILE", str(tmp_path / "token"))
    settings = Settings.load()
    assert (settings.api_url, settings.token_file) == ("https://incidents.example", tmp_path / "token")


def test_each_dev_agent_s_own_token_is_kept_for_their_eyes_only(tmp_path: Path):
    tokens = tmp_path / "api-tokens.yml"
    issued = write_dev_tokens(tokens)
    path = write_dev_credentials(tokens, issued)
    assert path.parent == tmp_path and stat.S_IMODE(path.stat().st_mode) == 0o600
    store = load_tokens(tokens)
    for person, line in (("ann", 1), ("boris", 2), ("vera", 3)):
        who = store.authenticate(dev_credential(path, person))
        assert who is not None and (who.role, who.person, who.line) == (Role.agent, person, line)
    with pytest.raises(TokenConfigError, match=r"no dev agent 'mallory'.*ann, boris, vera"):
        dev_credential(path, "mallory")
    with pytest.raises(TokenConfigError, match="does not exist"):
        dev_credential(tmp_path / "missing.yml", "ann")

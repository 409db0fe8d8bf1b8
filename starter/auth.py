"""Bearer tokens with roles, from configuration: never in the code, never logged.

INCIDENTS_API_TOKENS_FILE names a YAML file mapping each token's name to its
role and the hex SHA-256 of the token:

    ops-bot: {role: service, sha256: 9f86d081884c7d65...}
    ann:     {role: agent,   sha256: ...}

Roles: `service` opens incidents and reads them (and may pass on what the
customer said: feedback, recontacts); `agent` acts on incidents and reads;
`viewer` only reads; `sre` reads and may decode payloads via the codec server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from infra.config_files import ConfigFileError, read_yaml, validate_document
from infra.private_files import write_private

TOKENS_FILE_ENV = "INCIDENTS_API_TOKENS_FILE"


class Role(StrEnum):
    service = "service"
    agent = "agent"
    viewer = "viewer"
    sre = "sre"


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the token")


class TokenConfigError(ConfigFileError):
    """A token file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: Mapping[str, TokenEntry]) -> None:
        self._entries = {name: (entry.role, entry.sha256.lower()) for name, entry in entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        presented = digest(token)
        found: Principal | None = None
        # Compare with every entry, so the time taken says nothing about which one nearly matched.
        for name, (role, known) in self._entries.items():
            if hmac.compare_digest(presented, known):
                found = Principal(name, role)
        return found


def load_tokens(path: str | Path) -> TokenStore:
    path = Path(path)
    data = read_yaml(path, what="the token file", error=TokenConfigError)
    if not isinstance(data, dict) or not data:
        raise TokenConfigError(f"{path}: expected a mapping of token names to {{role, sha256}}")
    entries: dict[str, TokenEntry] = {}
    owners: dict[str, str] = {}
    for name, entry in data.items():
        entries[str(name)] = parsed = validate_document(
            path, entry, TokenEntry, error=TokenConfigError, prefix=str(name)
        )
        # One token under two names would make the caller's identity (and maybe role) a guess.
        first = owners.setdefault(parsed.sha256.lower(), str(name))
        if first != str(name):
            raise TokenConfigError(f"{path}: {name}.sha256: the same token as {first}; give each caller its own")
    return TokenStore(entries)


def load_tokens_from_env(environ: Mapping[str, str]) -> TokenStore:
    """The token file `environ` names (the environment's INCIDENTS_API_TOKENS_FILE)."""
    return load_tokens_file(environ.get(TOKENS_FILE_ENV))


def load_tokens_file(path: str | Path | None) -> TokenStore:
    """The token file the settings name (INCIDENTS_API_TOKENS_FILE); refused by name when none is named."""
    if not path:
        raise TokenConfigError(f"{TOKENS_FILE_ENV} is not set: name a token file (see starter/auth.py)")
    return load_tokens(path)


def write_dev_tokens(path: str | Path) -> dict[str, tuple[Role, str]]:
    """Fresh random tokens for local use: one per role. Returns name -> (role, plaintext token)."""
    issued = {f"dev-{role.value}": (role, f"{role.value}-{secrets.token_urlsafe(24)}") for role in Role}
    document = {name: {"role": role.value, "sha256": digest(token)} for name, (role, token) in issued.items()}
    write_private(path, yaml.safe_dump(document, sort_keys=True))
    return issued

"""Bearer tokens with roles, from configuration: never in the code, never logged.

INCIDENTS_API_TOKENS_FILE names a YAML file mapping each token's name to its
role and the hex SHA-256 of the token; an agent's token also names the person
who acts with it, their line (1, 2, 3: what they may approve) and their team:

    ops-bot: {role: service, sha256: 9f86d081884c7d65...}
    ann:     {role: agent,   sha256: ..., person: ann, line: 1, team: contact-centre}

The person is who every action sent with the token is recorded as; the line is
the authority the incident checks refunds against. A token file from before
(an agent entry without person, line or team) is refused, naming the field:
add the three to each agent entry.

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
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from infra.config_files import ConfigFileError, read_yaml, validate_document
from infra.private_files import write_private
from workflows.domain.models import AgentName, Line

TOKENS_FILE_ENV = "INCIDENTS_API_TOKENS_FILE"


class Role(StrEnum):
    service = "service"
    agent = "agent"
    viewer = "viewer"
    sre = "sre"


Team = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
AGENT_FIELDS = ("person", "line", "team")


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the token")
    # An agent's identity and authority (required for role agent, not allowed for the others).
    person: AgentName | None = Field(default=None, description="who acts with this token (agents)")
    line: Line | None = Field(default=None, description="the agent's support line: 1, 2 or 3")
    team: Team | None = Field(default=None, description="the agent's team")


class TokenConfigError(ConfigFileError):
    """A token file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Principal:
    """Who called: the token's name and role, and for an agent the person, line and team it names."""

    name: str
    role: Role
    person: str | None = None
    line: int | None = None
    team: str | None = None

    def describe(self) -> str:
        if self.person is None:
            return f"token {self.name} ({self.role.value})"
        return f"{self.person} (line {self.line}, {self.team}; token {self.name})"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: Mapping[str, TokenEntry]) -> None:
        self._entries = {
            name: (Principal(name, entry.role, entry.person, entry.line, entry.team), entry.sha256.lower())
            for name, entry in entries.items()
        }

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        return self.by_digest(digest(token))

    def by_digest(self, presented: str) -> Principal | None:
        """Whose token has this SHA-256 (the desk's session keeps the digest, never the token)."""
        found: Principal | None = None
        # Compare with every entry, so the time taken says nothing about which one nearly matched.
        for principal, known in self._entries.values():
            if hmac.compare_digest(presented, known):
                found = principal
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
        _check_identity(path, str(name), parsed)
        # One token under two names would make the caller's identity (and maybe role) a guess.
        first = owners.setdefault(parsed.sha256.lower(), str(name))
        if first != str(name):
            raise TokenConfigError(f"{path}: {name}.sha256: the same token as {first}; give each caller its own")
    return TokenStore(entries)


def _check_identity(path: Path, name: str, entry: TokenEntry) -> None:
    given = [field for field in AGENT_FIELDS if getattr(entry, field) is not None]
    if entry.role is Role.agent:
        for field in AGENT_FIELDS:
            if field not in given:
                raise TokenConfigError(
                    f"{path}: {name}.{field}: required for an agent token (each agent token names its person, "
                    "line 1-3 and team, e.g. {person: ann, line: 1, team: contact-centre}; add them to this entry)"
                )
    elif given:
        raise TokenConfigError(f"{path}: {name}.{given[0]}: only an agent token names a person, line and team")


def load_tokens_from_env(environ: Mapping[str, str]) -> TokenStore:
    """The token file `environ` names (the environment's INCIDENTS_API_TOKENS_FILE)."""
    return load_tokens_file(environ.get(TOKENS_FILE_ENV))


def load_tokens_file(path: str | Path | None) -> TokenStore:
    """The token file the settings name (INCIDENTS_API_TOKENS_FILE); refused by name when none is named."""
    if not path:
        raise TokenConfigError(f"{TOKENS_FILE_ENV} is not set: name a token file (see starter/auth.py)")
    return load_tokens(path)


# The dev stack's agents: `dev-agent` is ann on line 1; boris (line 2) and vera (line 3) approve what she may not.
DEV_AGENTS = {
    "dev-agent-line2": {"person": "boris", "line": 2, "team": "specialists"},
    "dev-agent-line3": {"person": "vera", "line": 3, "team": "duty-managers"},
    "dev-agent": {"person": "ann", "line": 1, "team": "contact-centre"},
}


def write_dev_tokens(path: str | Path) -> dict[str, tuple[Role, str]]:
    """Fresh random tokens for local use: one per role, and one agent per line (DEV_AGENTS).

    Returns name -> (role, plaintext token); `dev-<role>` is each role's first token."""
    names: list[tuple[str, Role]] = [(f"dev-{role.value}", role) for role in Role if role is not Role.agent]
    names += [(name, Role.agent) for name in DEV_AGENTS]
    issued = {name: (role, f"{role.value}-{secrets.token_urlsafe(24)}") for name, role in names}
    document = {
        name: {"role": role.value, "sha256": digest(token), **DEV_AGENTS.get(name, {})}
        for name, (role, token) in issued.items()
    }
    write_private(path, yaml.safe_dump(document, sort_keys=True))
    return issued


# The dev stack's agents' own tokens, for the CLI (`incidents --as ann ...`): beside the token file, mode 0600.
DEV_CREDENTIALS_NAME = "agent-credentials.yml"


def dev_credentials_file(tokens_file: str | Path) -> Path:
    """Where `incidents dev` keeps each dev agent's token: beside the token file it wrote."""
    return Path(tokens_file).with_name(DEV_CREDENTIALS_NAME)


def write_dev_credentials(tokens_file: str | Path, issued: Mapping[str, tuple[Role, str]]) -> Path:
    """Each dev agent's plaintext token under their person's name (ann, boris, vera), for `incidents --as`."""
    path = dev_credentials_file(tokens_file)
    document = {DEV_AGENTS[name]["person"]: token for name, (_, token) in issued.items() if name in DEV_AGENTS}
    write_private(path, yaml.safe_dump(document, sort_keys=True))
    return path


def dev_credential(path: str | Path, person: str) -> str:
    """The token `incidents dev` issued to `person`; TokenConfigError naming the file, or the people it knows."""
    path = Path(path)
    if not path.exists():
        raise TokenConfigError(
            f"{path} does not exist: `incidents --as` picks a dev agent's token from what `make run` wrote there "
            "(is `make run` running? elsewhere set INCIDENTS_TOKEN_FILE)"
        )
    data = read_yaml(path, what="the dev credentials file", error=TokenConfigError)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise TokenConfigError(f"{path}: expected a mapping of people to tokens")
    token = data.get(person)
    if token is None:
        known = ", ".join(sorted(str(name) for name in data))
        raise TokenConfigError(f"--as: no dev agent {person!r} in {path} (known: {known})")
    return str(token)

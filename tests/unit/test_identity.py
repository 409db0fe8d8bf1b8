"""Identity and authority: every agent token names a person, their line and team (issue 15).

The token file's checks run here without a server; the API's use of them is in tests/stack/test_identity_api.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from starter.auth import Role, TokenConfigError, digest, load_tokens, write_dev_tokens


def test_an_agent_token_names_its_person_line_and_team(tmp_path: Path):
    path = tmp_path / "tokens.yml"
    path.write_text(
        f"ann-laptop: {{role: agent, sha256: {digest('t-ann')}, person: ann, line: 1, team: contact-centre}}\n"
        f"ivr: {{role: service, sha256: {digest('t-ivr')}}}\n"
    )
    store = load_tokens(path)
    ann, ivr = store.authenticate("t-ann"), store.authenticate("t-ivr")
    assert ann is not None and (ann.person, ann.line, ann.team) == ("ann", 1, "contact-centre")
    assert ivr is not None and ivr.person is None and ivr.role is Role.service


@pytest.mark.parametrize("missing", ["person", "line", "team"])
def test_an_old_agent_entry_without_its_identity_is_refused_by_field(tmp_path: Path, missing: str):
    fields = {"person": "ann", "line": "1", "team": "contact-centre"}
    del fields[missing]
    extra = "".join(f", {name}: {value}" for name, value in fields.items())
    path = tmp_path / "tokens.yml"
    path.write_text(f"ann: {{role: agent, sha256: {digest('t')}{extra}}}\n")
    with pytest.raises(TokenConfigError, match=rf"tokens.yml: ann\.{missing}: required for an agent token"):
        load_tokens(path)


def test_a_line_outside_1_to_3_and_a_person_on_a_service_token_are_refused(tmp_path: Path):
    path = tmp_path / "tokens.yml"
    path.write_text(f"ann: {{role: agent, sha256: {digest('t')}, person: ann, line: 4, team: x}}\n")
    with pytest.raises(TokenConfigError, match=r"ann\.line"):
        load_tokens(path)
    path.write_text(f"ivr: {{role: service, sha256: {digest('t')}, person: ann}}\n")
    with pytest.raises(TokenConfigError, match=r"ivr\.person: only an agent token"):
        load_tokens(path)


def test_the_dev_stack_issues_one_named_agent_per_line(tmp_path: Path):
    issued = write_dev_tokens(tmp_path / "tokens.yml")
    store = load_tokens(tmp_path / "tokens.yml")
    agents = {}
    for role, token in issued.values():
        principal = store.authenticate(token)
        assert principal is not None
        if role is Role.agent:
            agents[principal.line] = principal.person
    assert agents == {1: "ann", 2: "boris", 3: "vera"}
    assert store.authenticate(issued["dev-agent"][1]).person == "ann"  # type: ignore[union-attr]

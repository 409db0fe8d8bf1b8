"""Who acted, as authenticated (issue 15): over the real API, the dev server and a worker.

The token's person is the actor; its line is the refund authority; viewers never see the customer's contact.
"""

from __future__ import annotations

from tests.served_api import Api, body
from workflows.domain.actions import ACTOR_FIELDS, CATALOGUE


async def opened(api: Api, **fields: object) -> str:
    from starter.auth import Role

    response = await api.http.post(f"{api.url}/incidents", json=body(**fields), headers=api.auth(Role.service))
    assert response.status_code == 201, response.text
    ticket: str = response.json()["ticket_id"]
    return ticket


def test_customer_voice_actions_name_no_agent():
    for model in CATALOGUE.values():
        named = [name for name in ACTOR_FIELDS if name in model.model_fields]
        assert bool(named) == (model.meta.role == "agent"), model.action_name()


async def test_an_agent_cannot_act_under_another_name(api: Api):
    from starter.auth import Role

    ticket = await opened(api)
    agent = api.auth(Role.agent)  # ann's token
    refused = await api.http.post(f"{api.url}/incidents/{ticket}/acknowledge", json={"agent": "boris"}, headers=agent)
    assert refused.status_code == 403
    assert "this token belongs to ann" in refused.json()["detail"] and "'boris'" in refused.json()["detail"]
    # Omitting the actor is fine: the token says who it is, and the history shows it.
    taken = await api.http.post(f"{api.url}/incidents/{ticket}/notes", json={"text": "on it"}, headers=agent)
    assert taken.status_code == 200 and taken.json()["state"]["events"][-1]["by"] == "ann"
    history = (await api.http.get(f"{api.url}/incidents/{ticket}/history", headers=agent)).json()
    assert not any(event["by"] == "boris" for event in history)


async def test_a_line_one_agent_pays_within_her_limit_and_is_refused_above_it(api: Api):
    from starter.auth import Role

    agent = api.auth(Role.agent)  # ann, line 1 (limit 5000.00 under the test policy's default limits)
    small = await opened(api, category="payment_not_refunded")
    added = await api.http.post(
        f"{api.url}/incidents/{small}/refund", json={"refund": {"amount": "700.00", "currency": "RUB"}}, headers=agent
    )
    assert added.status_code == 200, added.text
    assert added.json()["state"]["line"] == 1 and added.json()["state"]["refund"]["status"] in ("requested", "paid")
    large = await opened(api, category="payment_not_refunded")
    refused = await api.http.post(
        f"{api.url}/incidents/{large}/refund", json={"refund": {"amount": "9000.00", "currency": "RUB"}}, headers=agent
    )
    assert refused.status_code == 409 and "line-1 limit" in refused.json()["detail"]
    # Claiming a higher line is refused outright.
    claimed = await api.http.post(f"{api.url}/incidents/{large}/refund/approve", json={"line": 3}, headers=agent)
    assert claimed.status_code == 403 and "cannot act as line 3" in claimed.json()["detail"]


async def test_a_viewer_never_sees_the_customers_contact(api: Api):
    from starter.auth import Role

    ticket = await opened(api, contact="ann.customer@example.com")
    for role in Role:
        state = (await api.http.get(f"{api.url}/incidents/{ticket}", headers=api.auth(role))).json()
        history = (await api.http.get(f"{api.url}/incidents/{ticket}/history", headers=api.auth(role))).text
        rows = (await api.http.get(f"{api.url}/incidents", headers=api.auth(role))).text
        if role is Role.viewer:
            assert state["contact"] is None
        else:
            assert state["contact"] == "ann.customer@example.com"
        assert "ann.customer@example.com" not in history + rows

"""The desk's pages over HTTP, on the dev server with a real worker (no browser: tests/test_desk_browser.py
has the browser): sign-in and CSRF, actions through the API's path with refusals in words, the queue's read
model and its change stream, and the customer's ticket page behind its unguessable link."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.desk_helpers import SECRET, DeskStack, cable_cut_in, csrf_of, desk_stack, signed_in
from tests.harness import Sandboxes, running_worker, worker_settings
from tests.policies import fast_policy


@pytest.fixture
async def stack(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[DeskStack]:
    async with running_worker(dev_env.client, sandboxes) as running:
        # Nothing escalates by itself while a test looks, but for the one that waits for it (3 s).
        policy = fast_policy(line_timeouts={"1": "3s", "2": "1h"}, acknowledge_within="1h")
        async with desk_stack(running, policy, tmp_path) as served:
            yield served


async def test_signing_in_needs_an_agent_token_and_the_forms_csrf_token(stack: DeskStack):
    async with httpx.AsyncClient(timeout=30) as http:
        away = await http.get(f"{stack.url}/desk")
        assert away.status_code == 303 and away.headers["location"] == "/desk/signin"
        await http.get(f"{stack.url}/desk/signin")
        forged = await http.post(
            f"{stack.url}/desk/signin", data={"csrf": "forged", "token": stack.tokens["dev-agent"]}
        )
        assert forged.status_code == 403 and "expired" in forged.text
        csrf = csrf_of(forged.text)  # a refused sign-in starts a new session
        viewer = await http.post(
            f"{stack.url}/desk/signin", data={"csrf": csrf, "token": stack.tokens["dev-viewer"], "tz": "UTC"}
        )
        assert viewer.status_code == 401 and "the desk is for agents" in viewer.text
        zone = await http.post(
            f"{stack.url}/desk/signin", data={"csrf": csrf, "token": stack.tokens["dev-agent"], "tz": "Mars/Base"}
        )
        assert zone.status_code == 401 and "no time zone name" in zone.text
        await signed_in(http, stack, tz="Europe/Moscow")
        queue = await http.get(f"{stack.url}/desk")
        assert queue.status_code == 200 and "Signed in as <strong>ann</strong> (line 1, contact-centre)" in queue.text
        assert "Line 1 queue" in queue.text and queue.headers["content-security-policy"].startswith("default-src")
    async with httpx.AsyncClient(cookies={"incidents_desk": "tampered.cookie.value"}) as stranger:
        assert (await stranger.get(f"{stack.url}/desk")).status_code == 303


async def test_an_action_goes_through_the_api_path_as_the_signed_in_agent_and_a_refusal_reads_in_words(
    stack: DeskStack,
):
    async with httpx.AsyncClient(timeout=30) as http:
        ticket = (await stack.open(http, category="payment_not_refunded"))["ticket_id"]
        await signed_in(http, stack)
        page = await http.get(f"{stack.url}/desk/incidents/{ticket}")
        assert (
            page.status_code == 200 and "No internet since the storm" in page.text and "+7 900 000-00-00" in page.text
        )
        csrf = csrf_of(page.text)
        url = f"{stack.url}/desk/incidents/{ticket}/actions"
        no_csrf = await http.post(f"{url}/acknowledge", data={})
        assert no_csrf.status_code == 403 and "send it again" in no_csrf.text
        acked = await http.post(f"{url}/acknowledge", data={"csrf": csrf})
        assert acked.status_code == 303 and acked.headers["location"].endswith("?done=acknowledge#done")
        state = await stack.service.state(ticket)
        assert state.assignee == "ann" and state.events[-1].by != "boris"
        # Above ann's line-1 limit (5000.00 under the default limits): refused in words, next to the action.
        refund = await http.post(
            f"{url}/add_refund", data={"csrf": csrf, "refund.amount": "9000.00", "refund.currency": "RUB"}
        )
        assert refund.status_code == 409
        assert "Add refund refused:" in refund.text and "line-1 limit" in refund.text and "Traceback" not in refund.text
        # A field the model refuses is named next to its input, and what was typed stays.
        bad = await http.post(f"{url}/add_refund", data={"csrf": csrf, "refund.amount": "-5", "refund.currency": "RUB"})
        assert (
            bad.status_code == 422 and "Amount: Input should be greater than 0" in bad.text and 'value="-5"' in bad.text
        )
        resolved = await http.post(f"{url}/resolve", data={"csrf": csrf, "resolution": "spliced the cable"})
        assert resolved.status_code == 303
        again = await http.post(f"{url}/resolve", data={"csrf": csrf, "resolution": "twice"})
        assert again.status_code == 409 and "cannot resolve" in again.text


def test_every_catalogue_action_has_a_form_on_the_desk(stack: DeskStack):
    from workflows.domain.actions import CATALOGUE

    assert set(stack.desk.forms) == set(CATALOGUE)
    customer_voice = {name for name, model in CATALOGUE.items() if model.meta.role == "customer_voice"}
    assert set(stack.desk.customer_forms) == customer_voice


async def test_the_queue_follows_a_new_incident_and_its_escalation_and_tells_open_desks(stack: DeskStack):
    async with httpx.AsyncClient(timeout=30) as http:
        await signed_in(http, stack, "dev-agent-line2")
        first = await http.get(f"{stack.url}/desk?line=2")
        version = int(first.text.split('data-version="')[1].split('"')[0])
        ticket = (await stack.open(http))["ticket_id"]
        line_one = await http.get(f"{stack.url}/desk/queue?line=1")
        assert ticket in line_one.text, "the opening is written through at once"
        # The line-1 SLA (3 s) runs out: the feed reads it again just after its deadline.
        started = time.monotonic()
        while ticket not in (await http.get(f"{stack.url}/desk/queue?line=2")).text:
            assert time.monotonic() - started < 10, "the escalation never reached the line-2 queue"
            await asyncio.sleep(0.1)
        assert ticket not in (await http.get(f"{stack.url}/desk/queue?line=1")).text
        async with http.stream("GET", f"{stack.url}/desk/events", params={"after": version}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    assert ticket in json.loads(line[5:])["tickets"]
                    break


async def test_the_customers_page_opens_only_with_its_key_and_shows_no_internal_notes(stack: DeskStack):
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.open(http)
        other = await stack.open(http)
        ticket, link = opened["ticket_id"], opened["customer_page"]
        assert link.startswith(f"/t/{ticket}?k=")
        by_api = await http.get(f"{stack.url}/incidents/{ticket}/customer-link", headers=stack.bearer("dev-agent"))
        assert by_api.status_code == 200 and by_api.json()["url"] == stack.url + link
        viewer = await http.get(f"{stack.url}/incidents/{ticket}/customer-link", headers=stack.bearer("dev-viewer"))
        assert viewer.status_code == 403
        await signed_in(http, stack)
        page = await http.get(f"{stack.url}/desk/incidents/{ticket}")
        await http.post(
            f"{stack.url}/desk/incidents/{ticket}/actions/add_note",
            data={"csrf": csrf_of(page.text), "text": "internal: customer sounded angry"},
        )
        shown = await http.get(stack.url + link)
        assert shown.status_code == 200 and f"Your ticket {ticket}" in shown.text
        assert "Received: it is waiting for a specialist." in shown.text and "We registered your request." in shown.text
        assert "internal" not in shown.text and "angry" not in shown.text and "+7 900" not in shown.text
        assert shown.headers["referrer-policy"] == "no-referrer"
        assert "Rate our help" not in shown.text, "no score before the resolution"
        other_key = other["customer_page"].split("k=")[1]
        for wrong in (f"/t/{ticket}", f"/t/{ticket}?k={other_key}", f"/t/{ticket}?k=x", "/t/INC-000000?k=x"):
            refused = await http.get(stack.url + wrong)
            assert refused.status_code == 404 and ticket not in refused.text, wrong
        # The customer writes back through the page; the line hears of it.
        key = link.split("k=")[1]
        wrote = await http.post(
            f"{stack.url}/t/{ticket}/actions/customer_contact", data={"k": key, "text": "still nothing"}
        )
        assert wrote.status_code == 303
        state = await stack.service.state(ticket)
        assert state.recontacts == 1 and state.events[-1].type.value in ("line_notified", "customer_recontacted")
        forged = await http.post(f"{stack.url}/t/{ticket}/actions/customer_contact", data={"k": other_key, "text": "x"})
        assert forged.status_code == 404
        agent_only = await http.post(f"{stack.url}/t/{ticket}/actions/resolve", data={"k": key, "resolution": "x"})
        assert agent_only.status_code == 404


async def test_the_queue_filters_by_major_incident_and_says_which_one_a_row_is_linked_to(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    khimki = {"region": "moscow", "city": "khimki"}
    async with running_worker(dev_env.client, sandboxes) as running:
        outage_id = await cable_cut_in(running, khimki)
        async with desk_stack(running, fast_policy(), tmp_path) as stack, httpx.AsyncClient(timeout=30) as http:
            linked = (await stack.open(http, area={**khimki, "segment": "north-7"}))["ticket_id"]
            alone = (await stack.open(http, area={"region": "moscow", "city": "klin"}))["ticket_id"]
            assert (await stack.service.state(linked)).outage is not None, "the intake links it at the opening"
            await signed_in(http, stack)
            everything = await http.get(f"{stack.url}/desk")
            # The unfiltered page holds the first 200 rows, next deadline first: behind what earlier tests leave open
            # on this dev server neither incident need be among them, so only the filter's choices are looked for.
            assert everything.status_code == 200
            assert f">linked to {outage_id}</option>" in everything.text  # a choice of the filter
            linked_page = await http.get(f"{stack.url}/desk", params={"linked": "any"})
            assert f"linked to {outage_id}</span>" in linked_page.text  # the row says so
            for chosen in ("any", outage_id, outage_id.lower()):
                page = await http.get(f"{stack.url}/desk", params={"linked": chosen})
                assert page.status_code == 200 and linked in page.text and alone not in page.text, chosen
            fragment = await http.get(f"{stack.url}/desk/queue", params={"linked": outage_id})
            assert linked in fragment.text and alone not in fragment.text
            other = await http.get(f"{stack.url}/desk", params={"linked": "OUT-ZZZZZZ"})
            assert other.status_code == 200 and linked not in other.text and "Nothing here" in other.text
            for bad in ("yes", "OUT-1"):
                refused = await http.get(f"{stack.url}/desk", params={"linked": bad})
                assert refused.status_code == 400 and "linked:" in refused.text and "OUT-" in refused.text, bad
            live = await http.get(f"{stack.url}/desk/queue", params={"linked": "yes"})
            assert live.status_code == 400 and "linked:" in live.text


async def test_the_ticket_opened_message_brings_the_customers_page_link_and_no_history_holds_it(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    secret_file = tmp_path / "desk-secret"
    secret_file.write_bytes(SECRET)  # the API's desk secret (desk_helpers), shared with the worker as a file
    public = "https://help.example.test"
    settings = worker_settings(sandboxes).model_copy(update={"public_url": public, "desk_secret_file": secret_file})
    async with (
        running_worker(dev_env.client, sandboxes, settings=settings) as running,
        desk_stack(running, fast_policy(), tmp_path) as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        english = await stack.open(http, language="en", time_zone="Europe/London")
        russian = await stack.open(http, language="ru", time_zone="Europe/Moscow")
        for opened, words in (
            (english, "write to us on its page: "),
            (russian, "написать нам можно на её странице: "),
        ):
            ticket, path = opened["ticket_id"], opened["customer_page"]

            async def told(ticket: str = ticket) -> list[dict[str, object]]:
                return [
                    n
                    for n in await sandboxes.notifications(ticket_id=ticket, recipient="customer")
                    if n["kind"] == "ticket_opened"
                ]

            for _ in range(100):
                if await told():
                    break
                await asyncio.sleep(0.1)
            [message] = [str(n["message"]) for n in await told()]
            assert message.startswith(("We are sorry", "Приносим извинения")) and ticket in message
            assert message.endswith(words + public + path), message
            # The link in the message opens this customer's page, and only theirs.
            page = await http.get(stack.url + path)
            assert page.status_code == 200 and f"{ticket}" in page.text
            # Made at delivery from the desk's secret: the incident's history never holds its key.
            history = await running.client.get_workflow_handle(ticket).fetch_history()
            decoded = b"".join(base64.b64decode(data) for data in re.findall(r'"data": ?"([^"]+)"', history.to_json()))
            assert ticket.encode() in decoded and path.split("k=")[1].encode() not in decoded

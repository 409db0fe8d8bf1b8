"""The agent desk and the customer's ticket page in a real browser (Debian's chromium driven by Playwright,
as tests/test_web_ui.py does), on the dev server with a real worker: sign-in, a critical incident arriving
and escalating into the line-2 queue without a reload, acknowledge and resolve, the customer's page showing
the resolution and taking the score, a refund approval above the agent's limit refused in words, the
keyboard alone, and axe-core's check for serious accessibility violations. Screenshots go to artifacts/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from tests.desk_helpers import DeskStack, cable_cut_in, desk_stack
from tests.harness import Sandboxes, running_worker
from tests.policies import fast_policy

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
ZONE = "Europe/Moscow"
# A change must show on an open desk within this long, without a reload.
LIVE_WITHIN_MS = 2_000
axe = Axe()


@pytest.fixture
async def stack(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[DeskStack]:
    async with running_worker(dev_env.client, sandboxes) as running:
        # Line 1 holds a critical incident 8 s: long enough to see it arrive there, short enough to wait for.
        policy = fast_policy(line_timeouts={"1": "8s", "2": "1h"}, acknowledge_within="1h", customer_updates_every="1h")
        async with desk_stack(running, policy, tmp_path) as served:
            yield served


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(viewport=VIEWPORT, timezone_id=ZONE, locale="en-GB")
    return await context.new_page()


async def sign_in(page: Page, stack: DeskStack, token_name: str) -> None:
    await page.goto(f"{stack.url}/desk")
    assert page.url.endswith("/desk/signin")
    await expect(page.get_by_label("Your time zone")).to_have_value(ZONE)  # the browser's, filled in
    await page.get_by_label("Your agent token").fill(stack.tokens[token_name])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{stack.url}/desk")


async def no_serious_violations(page: Page, what: str) -> None:
    results = await axe.run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, f"{what}: {results.generate_report()}"


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


async def test_an_agent_follows_a_critical_incident_to_line_two_and_resolves_it_and_the_customer_scores_it(
    stack: DeskStack, browser: Browser
):
    line_one, line_two = await new_page(browser), await new_page(browser)
    await sign_in(line_one, stack, "dev-agent")  # ann, line 1: her queue is line 1's
    await sign_in(line_two, stack, "dev-agent-line2")  # boris, line 2
    await expect(line_two.get_by_role("heading", name="Line 2 queue")).to_be_visible()
    await no_serious_violations(line_two, "the queue")
    for page in (line_one, line_two):
        await page.evaluate("window.notReloaded = true")

    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.open(http, description="No internet since the storm, whole street")
    ticket = opened["ticket_id"]
    on_line_one = line_one.locator(f"#q-{ticket}")
    await expect(on_line_one).to_be_visible(timeout=LIVE_WITHIN_MS)
    row = line_one.locator(f"tr[data-ticket='{ticket}']")
    await expect(row).to_contain_text("critical")
    await expect(row).to_contain_text("breaching soon")
    await shot(line_one, "desk-queue-line1")
    # The line-1 SLA runs out: the incident leaves line 1 and shows on line 2, neither page reloaded.
    on_line_two = line_two.locator(f"#q-{ticket}")
    await expect(on_line_two).to_be_visible(timeout=12_000)
    await expect(on_line_one).to_have_count(0, timeout=LIVE_WITHIN_MS)
    for page in (line_one, line_two):
        assert await page.evaluate("window.notReloaded === true"), "the page was reloaded"
    await shot(line_two, "desk-queue-line2")

    await on_line_two.click()
    await expect(line_two.get_by_role("heading", name=ticket)).to_be_visible()
    await expect(line_two.locator("#incident-line")).to_have_text("2")
    body = await line_two.inner_text("main")
    assert "MSK" in body, "times show in the agent's time zone"
    assert "No internet since the storm, whole street" in body and "+7 900 000-00-00" in body
    assert "Escalated from line 1 to line 2 (its time on the line ran out)" in body
    assert "line-2 SLA" in body, "the clocks say what is due next"
    await line_two.locator("#action-acknowledge").get_by_role("button", name="Acknowledge").click()
    await expect(line_two.locator("#done")).to_have_text("Done: acknowledge.")
    await expect(line_two.locator("#incident-assignee")).to_have_text("boris")
    resolve = line_two.locator("#action-resolve")
    await resolve.get_by_text("Resolve", exact=True).first.click()  # open it
    await resolve.get_by_label("Resolution").fill("spliced the cable at the street cabinet")
    await resolve.get_by_role("button", name="Resolve").click()
    await expect(line_two.locator("#incident-status")).to_contain_text("resolved")
    await no_serious_violations(line_two, "the incident page")
    await shot(line_two, "desk-incident")
    customer_link = await line_two.get_by_role("link", name="the customer's link").get_attribute("href")
    assert customer_link is not None and customer_link.endswith(opened["customer_page"])

    customer = await new_page(browser)  # no desk session: the link alone opens it
    await customer.goto(customer_link)
    await expect(customer.locator("#status-words")).to_have_text("Resolved: we believe it is fixed.")
    page_text = await customer.inner_text("main")
    assert "We fixed it: spliced the cable at the street cabinet" in page_text
    assert "boris" not in page_text and "+7 900" not in page_text, "no agent names, no contact"
    await no_serious_violations(customer, "the customer's page")
    rate = customer.locator("#action-feedback")
    await rate.get_by_label("Score").select_option("5")
    await rate.get_by_label("Comment").fill("fast, thank you")
    await shot(customer, "customer-page")
    await rate.get_by_role("button", name="Rate our help").click()
    await expect(customer.locator("#done")).to_have_text("Thank you: we got it.", timeout=15_000)
    await expect(customer.locator("#status-words")).to_have_text("Closed: this request is finished.")
    state = await stack.service.state(ticket)
    assert state.feedback is not None and (state.feedback.score, state.feedback.comment) == (5, "fast, thank you")


async def test_a_refund_approval_above_the_agents_limit_is_refused_in_words(stack: DeskStack, browser: Browser):
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.open(
            http, category="payment_not_refunded", refund={"amount": "9000.00", "currency": "RUB"}
        )
    ticket = opened["ticket_id"]
    page = await new_page(browser)
    await sign_in(page, stack, "dev-agent")  # ann, line 1: her limit is 5000.00
    await page.goto(f"{stack.url}/desk/incidents/{ticket}")
    await expect(page.get_by_text("awaiting approval")).to_be_visible()
    approve = page.locator("#action-approve-refund")
    await approve.get_by_role("button", name="Approve refund").click()
    refusal = page.locator("#action-approve-refund-refusal")
    await expect(refusal).to_have_text(
        "Approve refund refused: 9000.00 RUB exceeds the line-1 approval limit 5000.00; a higher line must approve it"
    )
    await expect(refusal).to_be_focused()  # a screen reader hears it at once
    assert "Traceback" not in await page.content()
    await no_serious_violations(page, "the incident page with a refusal")
    await shot(page, "desk-refused")
    state = await stack.service.state(ticket)
    assert state.refund is not None and state.refund.status.value == "awaiting_approval"


async def focus_of(page: Page) -> dict[str, Any]:
    focused: dict[str, Any] = await page.evaluate(
        "(() => { const e = document.activeElement; return {tag: e.tagName, id: e.id, text: e.textContent.trim(),"
        " outline: getComputedStyle(e).outlineStyle}; })()"
    )
    return focused


async def tab_to(page: Page, wanted: str, limit: int = 80) -> dict[str, Any]:
    """Press Tab until the focused element's id or text is `wanted`."""
    seen = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await focus_of(page)
        if wanted in (focused["id"], focused["text"]):
            return focused
        seen.append(focused["id"] or focused["text"][:20])
    raise AssertionError(f"Tab never reached {wanted!r}; it went {seen}")


async def test_the_desk_works_from_the_keyboard_alone(stack: DeskStack, browser: Browser):
    async with httpx.AsyncClient(timeout=30) as http:
        ticket = (await stack.open(http))["ticket_id"]
    page = await new_page(browser)
    await page.goto(f"{stack.url}/desk/signin")
    await no_serious_violations(page, "the sign-in page")
    assert (await focus_of(page))["id"] == "token", "the token field has the focus at once"
    await page.keyboard.type(stack.tokens["dev-agent"])
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{stack.url}/desk")
    skip = await tab_to(page, "Skip to the main content")
    assert skip["tag"] == "A"
    link = await tab_to(page, f"q-{ticket}")
    assert link["outline"] != "none", "the focus is visible"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=ticket)).to_be_visible()
    await tab_to(page, "Acknowledge")
    await page.keyboard.press("Enter")
    await expect(page.locator("#done")).to_have_text("Done: acknowledge.")
    assert (await focus_of(page))["id"] == "done", "the outcome has the focus"
    await expect(page.locator("#incident-assignee")).to_have_text("ann")
    # The note's text area, opened, typed into and sent with the keyboard.
    await tab_to(page, "action-add-note-open")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert (await focus_of(page))["id"] == "action-add-note-text"
    await page.keyboard.type("called the customer back")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#done")).to_have_text("Done: add note.")
    await expect(page.locator("#incident-live")).to_contain_text("ann noted: called the customer back")
    await asyncio.sleep(0)


async def test_an_agent_narrows_the_queue_to_a_major_incidents_customers(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path, browser: Browser
):
    """The "linked to a major incident" filter in the browser; its queue and incident pages are the README's
    screenshots (docs/desk.png, docs/desk-incident.png: copied from artifacts/ by hand when the desk changes)."""
    khimki = {"region": "moscow", "city": "khimki"}
    async with running_worker(dev_env.client, sandboxes) as running:
        outage_id = await cable_cut_in(running, khimki)
        policy = fast_policy(
            line_timeouts={"1": "1h", "2": "4h"}, acknowledge_within="15m", customer_updates_every="4h"
        )
        async with desk_stack(running, policy, tmp_path) as stack, httpx.AsyncClient(timeout=30) as http:
            scene = [
                ("connection_lost", "No internet since this morning, the whole street", {**khimki, "segment": "n-7"}),
                ("payment_not_refunded", "Card charged 9000 RUB when binding it; the card never bound", None),
                ("speed_drop", "10 Mbit/s instead of 100 in the evenings", None),
                ("social_login", "The 'log in with VK' button does nothing", None),
            ]
            tickets = []
            for category, description, area in scene:
                fields: dict[str, Any] = {"category": category, "description": description}
                if area is not None:
                    fields["area"] = area
                tickets.append((await stack.open(http, **fields))["ticket_id"])
            linked = tickets[0]
            page = await new_page(browser)
            await sign_in(page, stack, "dev-agent")
            row = page.locator(f"tr[data-ticket='{linked}']")
            await expect(row).to_contain_text(f"linked to {outage_id}")
            for ticket in tickets[1:]:
                await expect(page.locator(f"#q-{ticket}")).to_be_visible()
            await no_serious_violations(page, "the queue with a linked incident")
            await shot(page, "desk-queue-readme")
            await page.get_by_label("Major incident").select_option(outage_id)
            await page.get_by_role("button", name="Filter").click()
            await expect(page.get_by_label("Major incident")).to_have_value(outage_id)
            await expect(row).to_be_visible()
            for ticket in tickets[1:]:
                await expect(page.locator(f"#q-{ticket}")).to_have_count(0)
            await page.get_by_label("Major incident").select_option("any")
            await page.get_by_role("button", name="Filter").click()
            await expect(page.locator("table.queue tbody tr")).to_have_count(1)
            await page.goto(f"{stack.url}/desk/incidents/{tickets[1]}")
            await expect(page.get_by_role("heading", name=tickets[1])).to_be_visible()
            await shot(page, "desk-incident-readme")

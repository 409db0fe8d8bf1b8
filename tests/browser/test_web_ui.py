"""The Temporal web UI in a real browser (Debian's chromium, driven by Playwright): an SRE finds a
customer's incidents by search attribute, reads the history by its summaries, and sees the customer's
contact decrypted through the codec server while the summaries never show it."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from infra.codec import EncryptionCodec, write_new_keys
from starter.codec_server import SreTokens, create_codec_app
from tests.harness import Sandboxes, running_worker
from tests.helpers import event_types, send, start_incident, until
from tests.policies import fast_policy
from tests.sandbox_servers import serve

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PHONE = "+7 903 111-22-33"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def all_text(page: Page) -> str:
    """The page's text, including frames (the UI renders markdown summaries in sandboxed iframes)."""
    texts = []
    for frame in page.frames:
        try:
            texts.append(await frame.inner_text("body"))
        except Exception:  # a frame navigating away mid-read has no text to give
            continue
    return "\n".join(texts)


async def text_of(page: Page, url: str | None, expected: str, shot: Path) -> str:
    """Open `url` (or stay on the page), wait until `expected` shows, keep a screenshot, return the text."""
    if url is not None:
        await page.goto(url)
    text = ""
    try:
        for _ in range(60):
            text = await all_text(page)
            if expected in text:
                await asyncio.sleep(1)  # let the rest of the tables settle for the screenshot
                return await all_text(page)
            await asyncio.sleep(0.5)
        raise AssertionError(f"{expected!r} never showed on {url or page.url}")
    finally:
        await page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")


async def metadata_texts(client: Client, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Every summary and details text in the history, decoded (they travel through the payload codec)."""
    texts: list[str] = []
    async for event in handle.fetch_history_events():
        for payload in (event.user_metadata.summary, event.user_metadata.details):
            if payload.data:
                texts.extend(str(text) for text in await client.data_converter.decode([payload]))
    return texts


async def test_an_sre_finds_and_reads_an_incident_in_the_web_ui(
    ui: tuple[WorkflowEnvironment, str, int, str], sandboxes: Sandboxes, tmp_path: Path
):
    env, base, codec_port, sre_token = ui
    ARTIFACTS.mkdir(exist_ok=True)
    codec = EncryptionCodec(write_new_keys(tmp_path / "keys.yml"))
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=codec),
    )
    customer = "sre-walkthrough-42"
    app = create_codec_app(
        codec, SreTokens.of_plain(sre_token), ui_origins=[base, base.replace("127.0.0.1", "localhost")]
    )
    async with serve(app, codec_port), running_worker(client, sandboxes) as running:
        handle = await start_incident(running, customer_id=customer, contact=PHONE)
        # The same customer's second problem ran out of its line-1 time and is on line 2 now.
        line_two_policy = fast_policy(
            acknowledge_within="1h", line_timeouts={"1": "2s", "2": "4h"}, customer_updates_every="8h"
        )
        on_line_two = await start_incident(
            running, policy=line_two_policy, customer_id=customer, category="speed_drop", contact=PHONE
        )
        # Acknowledge only after the opening's workflow task: else both land in one notification batch.
        await until(handle, lambda s: "line_notified" in event_types(s))
        await send(handle, "acknowledge", agent="ann")
        state = await until(handle, lambda s: "acknowledged" in event_types(s))
        await until(on_line_two, lambda s: s.line == 2, within=30)
        summaries = await metadata_texts(client, handle)
        assert f"critical · connection_lost · customer {customer}" in summaries
        assert {"line-1 SLA 1h", "notify customer: ticket opened; line 1: new incident"} <= set(summaries)
        assert not [text for text in summaries if PHONE in text], "no summary or details carries the contact"
        run_id = (
            (await handle.fetch_history())
            .events[0]
            .workflow_execution_started_event_attributes.original_execution_run_id
        )
        run_id = handle.result_run_id or run_id
        await asyncio.sleep(1)  # visibility

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1600, "height": 1200})
            query = urllib.parse.quote(f"CustomerId = '{customer}'")
            listing = await text_of(
                page, f"{base}/namespaces/default/workflows?query={query}", handle.id, ARTIFACTS / "ui-list.png"
            )
            assert handle.id in listing and on_line_two.id in listing and "IncidentWorkflow" in listing

            history = await text_of(
                page,
                f"{base}/namespaces/default/workflows/{handle.id}/{run_id}/history",
                "critical · connection_lost · customer",
                ARTIFACTS / "ui-history.png",
            )
            assert f"critical · connection_lost · customer {customer}" in history
            assert "line-1 SLA 1h" in history, "the timer's summary says what it is for"
            assert "notify customer: ticket opened" in history, "the activity's summary says what it is for"
            assert PHONE in history, "the SRE reads the input decrypted through the codec server"

            await page.click("text=User Metadata")
            details = await text_of(page, None, "assignee: ann", ARTIFACTS / "ui-details.png")
            assert f"{state.ticket_id} · critical · open · line 1" in details, "current details read like a ticket"
            assert "next deadline: line-1 SLA 1h" in details
            assert PHONE not in details.split("Input")[0], "the summaries and details never show the contact"

            # Why is it on line 2, and what is due next: the history and its details say it without the code.
            escalated = await text_of(
                page,
                f"{base}/namespaces/default/workflows/{on_line_two.id}/{on_line_two.result_run_id}/history",
                "notify line 2: escalated",
                ARTIFACTS / "ui-line2-history.png",
            )
            assert "line-1 SLA 2s" in escalated, "the line-1 timer that fired"
            await page.click("text=User Metadata")
            details = await text_of(page, None, "SLA breached: line_1", ARTIFACTS / "ui-line2-details.png")
            assert f"{on_line_two.id} · critical · open · line 2" in details
            # Line 2's own first response (critical: 30m) falls before its 4h SLA.
            assert "next deadline: line-2 acknowledge within 30m, due " in details
            await browser.close()
        await handle.terminate(reason="test finished")
        await on_line_two.terminate(reason="test finished")

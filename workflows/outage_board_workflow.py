"""OutageBoard: the notices of the major incidents that are active or announced (one execution, `outage-board`).

Each major incident posts its notice here whenever it changes (an activity
signals with start, so the board exists the moment the first one is declared);
the intake asks the board, by query, which notices cover a new incident. The
board keeps the newest revision of each notice and forgets a resolved one; it
holds a few notices, never anything about a customer.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows.domain.notice import NoticeStatus, OutageNotice
    from workflows.domain.outage import OUTAGE_BOARD_WORKFLOW_TYPE
    from workflows.outage_contracts import BoardInput


@workflow.defn(name=OUTAGE_BOARD_WORKFLOW_TYPE)
class OutageBoardWorkflow:
    @workflow.init
    def __init__(self, input: BoardInput) -> None:
        self._notices: dict[str, OutageNotice] = {n.outage_id: n for n in input.notices}
        self._refused = 0

    @workflow.run
    async def run(self, input: BoardInput) -> None:
        await workflow.wait_condition(
            lambda: (
                workflow.info().is_continue_as_new_suggested()
                or workflow.info().get_current_history_length() >= input.history_limit
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(BoardInput(notices=list(self._notices.values()), history_limit=input.history_limit))

    @workflow.signal(dynamic=True)
    def receive(self, name: str, args: Sequence[RawValue]) -> None:
        """`post` (a notice); anything else, or a payload that is not a notice, is counted and dropped.

        Dynamic, so that a wrong number of payloads cannot fail the board's workflow task forever.
        """
        if name != "post" or len(args) != 1:
            self._refused += 1
            return
        try:
            notice = OutageNotice.model_validate(workflow.payload_converter().from_payload(args[0].payload))
        except (ValidationError, Exception):  # any unreadable post is the sender's mistake, never the board's
            self._refused += 1
            workflow.logger.warning("outage board: refused a post that is not a notice")
            return
        known = self._notices.get(notice.outage_id)
        if known is not None and known.revision > notice.revision:
            return  # an older post arriving late
        if notice.status is NoticeStatus.resolved:
            self._notices.pop(notice.outage_id, None)
        else:
            self._notices[notice.outage_id] = notice

    @workflow.query(name="notices")
    def notices(self) -> list[OutageNotice]:
        return list(self._notices.values())

"""IncidentService that tells the desk's read model every incident state it obtains (write-through)."""

from __future__ import annotations

from typing import Any

from starter.desk.readmodel import DeskFeed
from starter.incidents import IncidentService, Opened
from workflows.domain.actions import ActionModel
from workflows.domain.models import ActionResult, IncidentState, OpenIncident


class ObservedIncidentService(IncidentService):
    """The same service; each state it reads, each action's result and each opening also feed `feed`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feed: DeskFeed | None = None

    async def state(self, ticket_id: str, wait_for_start: bool = False) -> IncidentState:
        state = await super().state(ticket_id, wait_for_start)
        if self.feed is not None:
            self.feed.saw(state)
        return state

    async def act(self, ticket_id: str, action: ActionModel) -> ActionResult:
        result = await super().act(ticket_id, action)
        if self.feed is not None and result.state is not None:
            self.feed.saw(result.state, acted=True)
        return result

    async def open(self, request: OpenIncident) -> Opened:
        opened = await super().open(request)
        if self.feed is not None:
            self.feed.saw(opened.state, acted=True)
        return opened

"""The action catalogue: every action an agent, the customer or a service can send an incident.

Each action is one model here (its fields are the contract every client uses:
HTTP, CLI, raw Temporal signals) with its metadata (`ActionMeta`: the HTTP path,
the CLI words, who may send it; its docstring is its summary), plus one handler
in the state machine (`@handles` in workflows/domain/incident.py, or in money.py
for refunds and credits). Everything else is derived from this catalogue: the
workflow's dispatch (one dynamic signal handler and the `act` update take any
action by its name), the API's routes, the CLI's subcommands and the HTTP
client's paths. Adding an action is two edits: its model here, its handler there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, StringConstraints, TypeAdapter

from workflows.domain.models import (
    MAX_SHORT_TEXT,
    AgentName,
    Channel,
    ContactAddress,
    Contract,
    Line,
    Money,
    Refund,
    Severity,
    ShortText,
    Text,
)
from workflows.domain.notice import OutageId, OutageNotice

# Who may send an action: agents only, or the customer's voice (a service relaying the customer, or an agent).
# An agent action names its actor in one of ACTOR_FIELDS; a customer-voice action names no agent. An `outage`
# action is the major incident's own word to its linked incidents (workflows/outage_workflow.py sends it as a
# batch signal): it has no route of the incident API and no CLI command.
Role = Literal["agent", "customer_voice", "outage"]
ACTOR_FIELDS = ("agent", "by")
# The acting agent's own line, as the API authenticated it (from the token). Clients never send it: the API's
# body contract leaves it out; a raw Temporal signal without it keeps the behaviour of before (see money.py).
ACTOR_LINE = "actor_line"


@dataclass(frozen=True)
class ActionMeta:
    path: str  # POST /incidents/{ticket}/<path>
    cli: tuple[str, ...]  # incidents <words...> TICKET
    role: Role = "agent"
    # Options the CLI fills in when they are not given (the model itself requires them).
    cli_defaults: dict[str, str] = field(default_factory=dict)
    # A field that states the actor's own line: the API fills it from the token and refuses another value.
    own_line: str | None = None
    # Fields the service fills in (e.g. the major incident's notice), never the client: no API body field or option.
    filled: tuple[str, ...] = ()


CATALOGUE: dict[str, type[ActionModel]] = {}


class ActionModel(Contract):
    """Base of every action; a subclass with `meta` joins the catalogue under its `type`."""

    meta: ClassVar[ActionMeta]
    type: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.action_name()
        if name in CATALOGUE:
            raise TypeError(f"two actions are called {name!r}")
        CATALOGUE[name] = cls

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    @classmethod
    def action_name(cls) -> str:
        name: str = cls.model_fields["type"].default
        return name


class Acknowledge(ActionModel):
    """An agent takes ownership (stops the first-response clock, not the resolution clock)"""

    meta = ActionMeta(path="acknowledge", cli=("ack",))
    type: Literal["acknowledge"] = "acknowledge"
    agent: AgentName


class Assign(ActionModel):
    """Hand the incident to a named agent, who owns it from now on (as if they had acknowledged it)"""

    meta = ActionMeta(path="assign", cli=("assign",))
    type: Literal["assign"] = "assign"
    agent: AgentName
    assignee: AgentName = Field(description="the agent who takes it over")


class AddNote(ActionModel):
    """Add a note to the incident's history"""

    meta = ActionMeta(path="notes", cli=("note",))
    type: Literal["add_note"] = "add_note"
    agent: AgentName
    text: Text = Field(description="the note")


class Escalate(ActionModel):
    """Hand the incident to the next line"""

    meta = ActionMeta(path="escalate", cli=("escalate",))
    type: Literal["escalate"] = "escalate"
    agent: AgentName
    reason: ShortText = Field(description="why")


class Resolve(ActionModel):
    """Record the fix; the customer is told"""

    meta = ActionMeta(path="resolve", cli=("resolve",))
    type: Literal["resolve"] = "resolve"
    agent: AgentName
    resolution: Text = Field(description="what was done")


# A message to the customer travels by SMS, chat or e-mail: long enough for instructions, short enough to read.
MAX_CUSTOMER_MESSAGE = 2_000


class MessageCustomer(ActionModel):
    """Write to the customer (instructions, news); they read it with the ticket, in their language"""

    meta = ActionMeta(path="customer-messages", cli=("message",))
    type: Literal["message_customer"] = "message_customer"
    agent: AgentName
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CUSTOMER_MESSAGE)] = (
        Field(description="what the customer reads")
    )


class CustomerContact(ActionModel):
    """The customer got in touch again about it (reopens it after a resolution); service or agent"""

    meta = ActionMeta(
        path="customer-contacts", cli=("contact",), role="customer_voice", cli_defaults={"channel": "phone"}
    )
    type: Literal["customer_contact"] = "customer_contact"
    channel: Channel
    text: Text = Field(description="what the customer said")
    # What a joined open request carries besides its words: a new way to reach the customer, money owed.
    contact: ContactAddress = Field(default=None, description="the customer's new e-mail or phone")
    refund: Refund | None = Field(default=None, description="money the customer asks back")


class Feedback(ActionModel):
    """The customer's satisfaction score (1-2 reopens the incident); service or agent"""

    meta = ActionMeta(path="feedback", cli=("feedback",), role="customer_voice")
    type: Literal["feedback"] = "feedback"
    score: Annotated[int, Field(ge=1, le=5, strict=True, description="1 (bad) to 5 (good)")]
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SHORT_TEXT)] | None = None


class Reopen(ActionModel):
    """Reopen a resolved incident on line 2"""

    meta = ActionMeta(path="reopen", cli=("reopen",))
    type: Literal["reopen"] = "reopen"
    by: AgentName
    reason: ShortText = Field(description="why")


class AddRefund(ActionModel):
    """Add a refund owed to the customer (within the agent's line limit it is paid at once)"""

    meta = ActionMeta(path="refund", cli=("refund", "add"))
    type: Literal["add_refund"] = "add_refund"
    agent: AgentName
    refund: Refund
    actor_line: Line | None = Field(default=None, description="the acting agent's line, from their token (API)")


class ApproveRefund(ActionModel):
    """Approve a refund above the lower line's limit"""

    meta = ActionMeta(path="refund/approve", cli=("refund", "approve"), own_line="line")
    type: Literal["approve_refund"] = "approve_refund"
    agent: AgentName
    line: Line = Field(description="the approving agent's line; the policy caps what each line may approve")
    actor_line: Line | None = Field(default=None, description="the acting agent's line, from their token (API)")


class RetryRefund(ActionModel):
    """Retry a failed refund (paid at most once: the same idempotency key, or a new one after a ledger lookup)"""

    meta = ActionMeta(path="refund/retry", cli=("refund", "retry"))
    type: Literal["retry_refund"] = "retry_refund"
    agent: AgentName


class SettleRefund(ActionModel):
    """Record a refund paid outside the provider"""

    meta = ActionMeta(path="refund/settle", cli=("refund", "settle"))
    type: Literal["settle_refund"] = "settle_refund"
    agent: AgentName
    reference: ShortText = Field(description="how the money reached the customer outside the provider")


class SettleCompensation(ActionModel):
    """Record a goodwill credit paid by hand after the automatic one failed"""

    meta = ActionMeta(path="compensation/settle", cli=("compensation", "settle"))
    type: Literal["settle_compensation"] = "settle_compensation"
    agent: AgentName
    reference: ShortText = Field(description="how the goodwill credit reached the customer outside the provider")


class Reclassify(ActionModel):
    """Change the severity (the SLA clocks follow)"""

    meta = ActionMeta(path="reclassify", cli=("reclassify",))
    type: Literal["reclassify"] = "reclassify"
    agent: AgentName
    severity: Severity
    reason: ShortText = Field(description="why")


class AskCustomer(ActionModel):
    """Ask the customer a question: the SLA clocks pause until they answer (or a reminder, then a close)"""

    meta = ActionMeta(path="questions", cli=("ask",))
    type: Literal["ask_customer"] = "ask_customer"
    agent: AgentName
    question: Text = Field(description="what the customer is asked; sent to them as it is written")


class CustomerReply(ActionModel):
    """The customer's answer to an agent's question (the SLA clocks run on); service or agent"""

    meta = ActionMeta(path="replies", cli=("reply",), role="customer_voice", cli_defaults={"channel": "phone"})
    type: Literal["customer_reply"] = "customer_reply"
    channel: Channel
    text: Text = Field(description="what the customer answered")


class SelfHelpWorked(ActionModel):
    """The customer says the self-help steps fixed it: closed as self-resolved, no agent needed; service or agent"""

    meta = ActionMeta(
        path="self-help/worked", cli=("self-help", "worked"), role="customer_voice", cli_defaults={"channel": "phone"}
    )
    type: Literal["self_help_worked"] = "self_help_worked"
    channel: Channel
    comment: ShortText | None = Field(default=None, description="what the customer said")


class SelfHelpFailed(ActionModel):
    """The customer says the self-help steps did not fix it (recorded; the SLA never stopped); service or agent"""

    meta = ActionMeta(
        path="self-help/failed", cli=("self-help", "failed"), role="customer_voice", cli_defaults={"channel": "phone"}
    )
    type: Literal["self_help_failed"] = "self_help_failed"
    channel: Channel
    comment: ShortText | None = Field(default=None, description="what the customer said")


class LinkOutage(ActionModel):
    """Link it to a major incident (OUT-...): the customer hears "not only you", and it stops paging lines"""

    meta = ActionMeta(path="outage-link", cli=("link",), filled=("notice",))
    type: Literal["link_outage"] = "link_outage"
    agent: AgentName
    outage_id: OutageId = Field(description="the major incident, e.g. OUT-7F3K2Q")
    notice: OutageNotice | None = Field(default=None, description="the major incident's notice (the service's part)")


class UnlinkOutage(ActionModel):
    """Unlink it from its major incident (a mistaken match): its own SLA clocks run on with the time they had"""

    meta = ActionMeta(path="outage-unlink", cli=("unlink",))
    type: Literal["unlink_outage"] = "unlink_outage"
    agent: AgentName
    reason: ShortText = Field(description="why it is not part of the major incident")


class OutageUpdate(ActionModel):
    """News from the major incident it is linked to: a new expected fix time, or what is being done"""

    meta = ActionMeta(path="outage-update", cli=("outage-update",), role="outage")
    type: Literal["outage_update"] = "outage_update"
    notice: OutageNotice
    news: ShortText | None = Field(default=None, description="what the customers are told")


class OutageResolved(ActionModel):
    """The major incident it is linked to is resolved: it is resolved with it, with its own notice and callback"""

    meta = ActionMeta(path="outage-resolved", cli=("outage-resolved",), role="outage")
    type: Literal["outage_resolved"] = "outage_resolved"
    notice: OutageNotice
    resolution: Text = Field(description="what was done")
    resolved_by: AgentName
    compensation: dict[Severity, Money] = Field(
        default_factory=dict, description="the goodwill credit for the outage's duration, by severity"
    )


# Any action, told apart by its `type`: what the CLI and tests parse a plain dict with.
_ANY_ACTION: Any = Annotated[Union[tuple(CATALOGUE.values())], Field(discriminator="type")]  # noqa: UP007
ACTION_ADAPTER: TypeAdapter[ActionModel] = TypeAdapter(_ANY_ACTION)

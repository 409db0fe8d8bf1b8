"""Web forms derived from the action catalogue: one form per action, its inputs from the JSON schema of
what a client may send (starter.api.body_model), so an action added to workflows/domain/actions.py shows on
the desk without an edit here.

The fields a token supplies (who acts, their line) never show: the API's own rules (acting_as) fill them.
A submitted form is turned back into the JSON the API would get, typed by the same schema (an integer field
posts "5", the model wants 5), and validated by the same model; errors come back by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.domain.actions import ACTOR_FIELDS, ACTOR_LINE, ActionModel

# Up to this many choices a <select>; more (currencies) an input with a list of suggestions.
MAX_SELECT_CHOICES = 12
# Strings that may be longer than this get a text area.
LONG_TEXT = 1_000


@dataclass(frozen=True)
class Input:
    """One input of a form: `name` is its dotted path in the body (`refund.amount`)."""

    name: str
    label: str
    kind: str  # text, textarea, number, select, suggest, checkbox
    required: bool
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    fixed: str | None = None  # a value the page sets (a hidden input), e.g. the channel of the ticket page
    integer: bool = False  # posted as text, sent as a number

    @property
    def dom_id(self) -> str:
        return self.name.replace(".", "-").replace("_", "-")


@dataclass(frozen=True)
class Group:
    """Inputs of one nested object (a Money: amount and currency), shown as a fieldset."""

    name: str
    label: str
    required: bool
    help: str
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class ActionForm:
    action: str  # the catalogue's name, e.g. approve_refund
    title: str
    summary: str
    role: str
    items: tuple[Input | Group, ...]

    @property
    def inputs(self) -> list[Input]:
        found: list[Input] = []
        for item in self.items:
            found.extend(item.inputs if isinstance(item, Group) else [item])
        return found

    @property
    def dom_id(self) -> str:
        return f"action-{self.action.replace('_', '-')}"


@dataclass
class Submitted:
    """A form as posted: the values typed (to show them again) and, once checked, the problems by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None  # the incident's (or the token's) reason, in words


def _title(action: str) -> str:
    return action.replace("_", " ").capitalize()


def _label(name: str, schema: Mapping[str, Any]) -> str:
    return str(schema.get("title") or name.replace("_", " ")).capitalize()


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The schema without its $ref and its `| None`; and whether None was allowed."""
    nullable = False
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        if len(options) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **options[0]}
        else:  # e.g. a decimal amount: a number or a string; the model decides
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, "type": "string"}
    if "$ref" in schema:
        target = defs[str(schema["$ref"]).rsplit("/", 1)[-1]]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema, nullable


def _input(name: str, label: str, schema: Mapping[str, Any], required: bool, fixed: str | None) -> Input:
    help_text = str(schema.get("description") or "")
    if "enum" in schema:
        choices = tuple(str(choice) for choice in schema["enum"])
        kind = "select" if len(choices) <= MAX_SELECT_CHOICES else "suggest"
        return Input(name, label, kind, required, help_text, choices=choices, fixed=fixed)
    kind_of = schema.get("type")
    if kind_of == "integer":
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if minimum is not None and maximum is not None and maximum - minimum < MAX_SELECT_CHOICES:
            choices = tuple(str(n) for n in range(int(minimum), int(maximum) + 1))
            return Input(name, label, "select", required, help_text, choices=choices, fixed=fixed, integer=True)
        return Input(
            name, label, "number", required, help_text, minimum=minimum, maximum=maximum, fixed=fixed, integer=True
        )
    if kind_of == "boolean":
        return Input(name, label, "checkbox", False, help_text, fixed=fixed)
    max_length = schema.get("maxLength")
    kind = "textarea" if max_length is not None and max_length > LONG_TEXT else "text"
    return Input(name, label, kind, required, help_text, max_length=max_length, fixed=fixed)


def form_of(model: type[ActionModel], body: type[BaseModel], fixed: Mapping[str, str] | None = None) -> ActionForm:
    """The form of one action: `body` is what a client may send of it (starter.api.body_model)."""
    fixed = fixed or {}
    schema = body.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    supplied = {*ACTOR_FIELDS, ACTOR_LINE, "type", *([model.meta.own_line] if model.meta.own_line else [])}
    items: list[Input | Group] = []
    for name, raw in schema.get("properties", {}).items():
        if name in supplied:
            continue
        field_schema, nullable = _resolve(raw, defs)
        needed = name in required and not nullable
        label = _label(name, raw)
        if field_schema.get("type") == "object" and "properties" in field_schema:
            inner_required = set(field_schema.get("required", []))
            inputs = []
            for inner, inner_raw in field_schema["properties"].items():
                inner_schema, inner_nullable = _resolve(inner_raw, defs)
                path = f"{name}.{inner}"
                inputs.append(
                    _input(
                        path,
                        _label(inner, inner_raw),
                        inner_schema,
                        needed and inner in inner_required and not inner_nullable,
                        fixed.get(path),
                    )
                )
            help_text = str(raw.get("description") or field_schema.get("description") or "")
            items.append(Group(name, label, needed, help_text, tuple(inputs)))
        else:
            items.append(_input(name, label, field_schema, needed, fixed.get(name)))
    return ActionForm(model.action_name(), _title(model.action_name()), model.summary(), model.meta.role, tuple(items))


def _typed(value: str, spec: Input) -> Any:
    if spec.kind == "checkbox":
        return value in ("on", "true", "1")
    if spec.integer:
        try:
            return int(value)
        except ValueError:
            return value  # the model names the field: "Input should be a valid integer"
    return value


def body_of(form: ActionForm, posted: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body the posted values stand for: empty optional inputs are left out, as a client would."""
    body: dict[str, Any] = {}
    for item in form.items:
        if isinstance(item, Group):
            group: dict[str, Any] = {}
            for spec in item.inputs:
                value = (spec.fixed if spec.fixed is not None else posted.get(spec.name, "")).strip()
                if value:
                    group[spec.name.split(".", 1)[1]] = _typed(value, spec)
            if group or item.required:
                body[item.name] = group
            continue
        value = item.fixed if item.fixed is not None else posted.get(item.name, "")
        if item.kind == "checkbox":
            body[item.name] = _typed(value, item)
        elif value.strip():
            body[item.name] = _typed(value.strip(), item)
    return body


def errors_by_field(error: ValidationError) -> dict[str, str]:
    """Each problem under the dotted name of its input (`refund.amount`); a problem of the whole body under ''."""
    found: dict[str, str] = {}
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        found[path] = f"{found[path]}; {message}" if path in found else message
    return found


def form_values(posted: Mapping[str, str], form: ActionForm) -> dict[str, str]:
    return {spec.name: posted.get(spec.name, "") for spec in form.inputs}

"""Turn validation failures into one readable line that names the field."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    # Discriminated unions put the tag ("acknowledge") into the location; it names a model, not a field.
    return ".".join(str(part) for part in loc) or "(input)"


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    problems = []
    for item in error.errors(include_url=False):
        path = field_path(tuple(item["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path != "(input)" else prefix
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(f"{path}: {message}")
    return "; ".join(problems)

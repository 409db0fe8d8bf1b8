"""The one way every YAML file the system reads is loaded: the dev stack's temporal-dev.yml, the incident
policy, the codec key file and the API token file. A file that cannot be used is refused with one line
naming the file and, for a wrong value, the field.

Pure enough for the domain (the policy file is read here): YAML and pydantic, no Temporal, no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from infra.errors import describe_validation_error

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; the message names the file (and the field)."""


def read_yaml(path: str | Path, *, what: str = "file", error: type[ValueError] = ConfigFileError) -> Any:
    """The file's YAML document (None when empty); `what` names the file in the message ("the key file")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"{path}: cannot read {what} ({failure.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as failure:
        raise error(f"{path}: not valid YAML: {failure}") from None


def validate_document(
    path: str | Path,
    data: Any,
    model: type[M],
    *,
    error: type[ValueError] = ConfigFileError,
    prefix: str = "",
    context: dict[str, Any] | None = None,
) -> M:
    """`data` (read from `path`) as a `model`; a wrong value is refused naming the file and the field."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as failure:
        raise error(f"{path}: {describe_validation_error(failure, prefix=prefix)}") from None


def load_yaml(
    path: str | Path,
    model: type[M],
    *,
    what: str = "file",
    error: type[ValueError] = ConfigFileError,
    empty: Any = None,
    extra: dict[str, Any] | None = None,
) -> M:
    """Read `path` and validate it as `model`. An empty file counts as `empty` (None: refused by the model);
    `extra` adds fields that are not in the file (e.g. where it was found)."""
    data = read_yaml(path, what=what, error=error)
    if data is None:
        data = empty
    if extra:
        if not isinstance(data, dict):
            raise error(f"{path}: expected a mapping at the top level")
        data = {**data, **extra}
    return validate_document(path, data, model, error=error)

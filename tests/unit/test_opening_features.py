"""Every patch the incident workflow asks is one a new incident opens with (workflows/features.py)."""

from __future__ import annotations

import ast
import inspect

from workflows import incident_workflow
from workflows.features import OPENING_FEATURES, POLICY_BY_REFERENCE

# Asked only of an input that carries a client's own policy: exactly the starts that must be asked.
ASKED_OF_OLD_STARTS_ONLY = {POLICY_BY_REFERENCE}


def patches_asked() -> set[str]:
    """The ids in `workflow.patched(...)` calls: a constant, or a variable over one of the module's tables."""
    module = incident_workflow
    tree = ast.parse(inspect.getsource(module))
    asked: set[str] = set()
    tables = (module.FEATURES_BY_ACTION, module.ACTIONS_SINCE, module.PATCHED_ATTRIBUTES)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("patched", "_switched_on") or not node.args:
            continue
        argument = node.args[0]
        assert isinstance(argument, ast.Name), ast.unparse(node)
        value = getattr(module, argument.id, None)
        if isinstance(value, str):
            asked.add(value)
        else:  # a loop or parameter over the tables
            asked.update(v for table in tables for v in table.values())
    return asked


def test_the_incident_workflow_asks_patches() -> None:
    assert {"follow-through", "check-calendars", "claim-charges", "publish-closed-as"} <= patches_asked()


def test_every_patch_asked_is_an_opening_feature() -> None:
    missing = patches_asked() - set(OPENING_FEATURES) - ASKED_OF_OLD_STARTS_ONLY
    assert not missing, f"add to workflows/features.py OPENING_FEATURES (or say why not): {sorted(missing)}"

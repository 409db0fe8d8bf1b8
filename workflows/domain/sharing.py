"""One object per distinct value in a worker, for what thousands of cached incidents carry alike.

Policies, their references and the sets of features an incident opened with are frozen: handing every incident
the same object changes nothing any of them does, and spares a copy per cached incident.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Shared(Generic[K, V]):
    """Values by key, made once each; at most `limit` kept (the oldest goes first), so a worker that meets
    ever new values (a policy edited every hour for months) holds a bounded few, never all of them."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._by_key: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        found = self._by_key.get(key)
        if found is None:
            if len(self._by_key) >= self.limit:
                self._by_key.pop(next(iter(self._by_key)))
            self._by_key[key] = found = make()
        return found

    def holds(self, value: V) -> bool:
        """Whether `value` is itself one of the shared objects (not merely equal to one)."""
        return any(value is known for known in self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

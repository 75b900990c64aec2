"""A ref listing held as its differences from another one, read in the same order.

A mirror's two listings are mostly equal, and a listing may hold 500,000 refs: as a dict of its own
each name and id would be held once per side (about 270 bytes a ref). The target's listing is instead
read against the source's (`SharedListingBuilder`): an equal ref costs nothing, a changed one its
entry, a missing one its (shared) name. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView


class ListingDelta(Mapping[str, str]):
    """`base` with `changed` (other ids, and names `base` lacks) and without `missing` (names of base)."""

    def __init__(self, base: Mapping[str, str], changed: dict[str, str], missing: set[str]) -> None:
        self.base = base
        self.changed = changed
        self.missing = missing
        self._added = sum(1 for name in changed if name not in base)

    def __getitem__(self, name: str) -> str:
        sha = self.changed.get(name)
        if sha is not None:
            return sha
        if name in self.missing:
            raise KeyError(name)
        return self.base[name]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        sha = self.changed.get(name)
        if sha is not None:
            return sha
        if name in self.missing:
            return default
        return self.base.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.changed or (name in self.base and name not in self.missing)

    def __iter__(self) -> Iterator[str]:
        missing, base = self.missing, self.base
        if missing:
            yield from (name for name in base if name not in missing)
        else:
            yield from base
        if self._added:
            yield from (name for name in self.changed if name not in base)

    def __len__(self) -> int:
        return len(self.base) - len(self.missing) + self._added

    def items(self) -> ItemsView[str, str]:
        return _DeltaItems(self)

    def values(self) -> ValuesView[str]:
        return _DeltaValues(self)

    def differing(self) -> set[str]:
        """The names whose value here is not base's (changed, added or missing)."""
        return set(self.changed) | self.missing

    def __eq__(self, other: object) -> bool:
        if other is self.base:
            return not self.changed and not self.missing
        if isinstance(other, Mapping) and len(other) != len(self):
            return False
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


def delta_of(refs: Mapping[str, str], base: Mapping[str, str]) -> ListingDelta | None:
    """`refs` as its differences from `base`, when it is held so (read against it); else None."""
    return refs if isinstance(refs, ListingDelta) and refs.base is base else None


class _DeltaItems(ItemsView[str, str]):
    _mapping: ListingDelta

    def __iter__(self) -> Iterator[tuple[str, str]]:
        delta = self._mapping
        changed, missing, base = delta.changed, delta.missing, delta.base
        for name, sha in base.items():
            if name in missing:
                continue
            yield name, changed.get(name, sha)
        if delta._added:
            yield from ((name, sha) for name, sha in changed.items() if name not in base)


class _DeltaValues(ValuesView[str]):
    _mapping: ListingDelta

    def __iter__(self) -> Iterator[str]:
        return (sha for _name, sha in _DeltaItems(self._mapping))


class SharedListingBuilder:
    """Builds a listing whose refs arrive in ascending name order against `base`, a listing read in
    ascending order too (git lists refs sorted): a merge of the two, so nothing equal is held twice.

    A listing out of order is built whole instead (correct, just not shared)."""

    def __init__(self, base: dict[str, str]) -> None:
        self.base = base
        self._base_items = iter(base.items())
        self._current = next(self._base_items, None)
        self._passed = 0  # base entries merged so far
        self._last: str | None = None
        self.changed: dict[str, str] = {}
        self._missing: list[str] = []  # base's own name objects, in base's order
        self.whole: dict[str, str] | None = None  # set once the listing turned out not ascending

    def add(self, name: str, sha: str) -> None:
        if self.whole is not None:
            self.whole[name] = sha
            return
        if self._last is not None and name <= self._last:
            self.whole = self._materialized()
            self.whole[name] = sha
            return
        self._last = name
        current = self._current
        while current is not None and current[0] < name:
            self._missing.append(current[0])
            current = self._advance()
        if current is not None and current[0] == name:
            if current[1] != sha:
                self.changed[current[0]] = sha
            self._advance()
        else:
            self.changed[name] = sha

    def _advance(self) -> tuple[str, str] | None:
        self._passed += 1
        self._current = next(self._base_items, None)
        return self._current

    def result(self) -> Mapping[str, str]:
        """A ListingDelta of base while the differences are fewer than half of base, else a dict (of
        base's own strings where equal)."""
        if self.whole is not None:
            return self.whole
        while self._current is not None:
            self._missing.append(self._current[0])
            self._advance()
        if 2 * (len(self._missing) + len(self.changed)) <= len(self.base):
            return ListingDelta(self.base, self.changed, set(self._missing))
        return self._materialized()

    def _materialized(self) -> dict[str, str]:
        """The refs merged so far as a dict (base's entries up to the merge's position)."""
        whole: dict[str, str] = {}
        missing, changed, index = self._missing, self.changed, 0
        for position, (name, sha) in enumerate(self.base.items()):
            if position >= self._passed:
                break
            if index < len(missing) and missing[index] is name:
                index += 1
                continue
            whole[name] = changed.get(name, sha)
        whole.update((name, sha) for name, sha in changed.items() if name not in self.base)
        return whole

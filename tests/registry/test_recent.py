"""registry.store.recent.Recent: the least recently used entry goes first."""

from __future__ import annotations

from registry.store.recent import Recent


def test_the_least_recently_used_entry_goes_first() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # now the most recent
    recent.put("c", 3)
    assert (recent.get("b"), recent.get("a"), recent.get("c"), len(recent)) == (None, 1, 3, 2)
    recent.put("a", 4)  # replaced, not added
    assert (recent.get("a"), len(recent)) == (4, 2)
    recent.pop("a")
    recent.pop("missing")
    assert (recent.get("a"), len(recent)) == (None, 1)

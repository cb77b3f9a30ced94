"""Resource scopes of the Docker registry token protocol: parsing, merging, intersecting.

A client asks the token service for access with one or more ``scope`` query values, each holding one or more
space-separated scopes of the form ``type:name:action[,action...]``::

    repository:acme/app:pull,push
    repository(plugin):acme/app:pull      # a resource class stays part of the type
    repository:127.0.0.1:5000/acme/app:pull   # the name may contain ':' (a host:port prefix)
    registry:catalog:*

The type is everything before the first ``:``, the actions everything after the last one, and the name is what lies
in between. The granted access goes into the token's ``access`` claim as ``{"type", "name", "actions"}`` objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ResourceAccess",
    "ScopeError",
    "intersect",
    "parse_scope",
    "parse_scopes",
    "scope_string",
]

# Distribution's resource type grammar: a lowercase word with an optional "(class)" suffix.
_TYPE = re.compile(r"[a-z0-9]+(?:\([a-z0-9]+\))?")
# Repository names (with an optional host[:port]/ prefix) and registry resources such as "catalog". Anything
# else (spaces, quotes, control or non-ASCII characters) is garbage, not a name some policy should look at.
_NAME = re.compile(r"[A-Za-z0-9._/:-]{1,512}")
_ACTION = re.compile(r"[a-z0-9_-]{1,64}|\*")


class ScopeError(ValueError):
    """A scope (or an ``access`` claim entry) that does not parse; the message is one readable line."""


@dataclass(frozen=True)
class ResourceAccess:
    """Actions on one resource, e.g. ``ResourceAccess("repository", "acme/app", ("pull", "push"))``."""

    type: str
    name: str
    actions: tuple[str, ...]

    def as_claim(self) -> dict[str, object]:
        """The JSON form used in a token's ``access`` claim: ``{"type", "name", "actions"}``."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    @classmethod
    def from_claim(cls, entry: object) -> ResourceAccess:
        """Parse one ``access`` claim entry; raise ScopeError unless it is an object with a string ``type`` and
        ``name`` and a list of string ``actions`` (other members, such as Distribution's ``class``, are ignored)."""
        if not isinstance(entry, Mapping):
            raise ScopeError("access entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str):
            raise ScopeError("access entry needs a string type and name")
        if not isinstance(actions, list) or not all(isinstance(action, str) for action in actions):
            raise ScopeError("access entry needs a list of string actions")
        return cls(kind, name, tuple(actions))


def parse_scope(text: str) -> list[ResourceAccess]:
    """Parse one ``scope`` query value, which may hold several space-separated scopes.

    Empty actions (``pull,,push``) are dropped, repeated ones kept once, and a scope left with no action at all
    (``repository:a/b:``) asks for nothing and yields no entry. An empty or blank value yields ``[]``.
    Raises ScopeError for anything that is not ``type:name:actions`` with a valid type, name and actions.
    """
    found: list[ResourceAccess] = []
    for part in text.split():
        access = _parse_one(part)
        if access.actions:
            found.append(access)
    return found


def parse_scopes(values: Iterable[str]) -> list[ResourceAccess]:
    """Parse every ``scope`` value of a request and merge entries for the same type and name into one.

    Actions are united in the order first seen; entries keep the order in which their resource first appeared.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for access in parse_scope(value):
            actions = merged.setdefault((access.type, access.name), [])
            actions.extend(action for action in access.actions if action not in actions)
    return [ResourceAccess(kind, name, tuple(actions)) for (kind, name), actions in merged.items()]


def scope_string(access: ResourceAccess) -> str:
    """The scope text of ``access``: ``type:name:a,b`` (what a ``WWW-Authenticate`` challenge carries)."""
    return f"{access.type}:{access.name}:{','.join(access.actions)}"


def intersect(
    requested: Iterable[ResourceAccess], allowed: Callable[[ResourceAccess], Iterable[str]]
) -> list[ResourceAccess]:
    """Keep, for each requested resource, only the actions ``allowed`` grants on it, in the requested order.

    ``allowed`` is called once per entry and returns the actions the caller may perform on that resource
    (an empty result for none). Entries left with no action are dropped: granting less than was asked for is
    never an error, the registry answers the missing part with its own 401/403 later.
    """
    granted_all: list[ResourceAccess] = []
    for access in requested:
        granted = set(allowed(access))
        actions = tuple(action for action in access.actions if action in granted)
        if actions:
            granted_all.append(ResourceAccess(access.type, access.name, actions))
    return granted_all


def _parse_one(scope: str) -> ResourceAccess:
    """Parse a single ``type:name:actions`` scope (no whitespace inside)."""
    kind, sep, rest = scope.partition(":")
    name, sep2, action_text = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(f"scope {_shown(scope)} is not of the form type:name:actions")
    if not _TYPE.fullmatch(kind):
        raise ScopeError(f"scope {_shown(scope)} has an invalid resource type")
    if not _NAME.fullmatch(name):
        raise ScopeError(f"scope {_shown(scope)} has an invalid resource name")
    return ResourceAccess(kind, name, _parse_actions(scope, action_text))


def _parse_actions(scope: str, text: str) -> tuple[str, ...]:
    """The distinct non-empty actions of a comma-separated list, in order."""
    actions: list[str] = []
    for action in text.split(","):
        if not action or action in actions:
            continue
        if not _ACTION.fullmatch(action):
            raise ScopeError(f"scope {_shown(scope)} has an invalid action")
        actions.append(action)
    return tuple(actions)


def _shown(scope: str) -> str:
    """A scope safe to put in a one-line message: quoted, escaped and cut short."""
    return ascii(scope[:80] + ("..." if len(scope) > 80 else ""))

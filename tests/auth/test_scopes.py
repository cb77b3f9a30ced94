"""Scope parsing, merging and intersection (auth/scopes.py)."""

from __future__ import annotations

import pytest

from auth.scopes import ResourceAccess, ScopeError, intersect, parse_scope, parse_scopes, scope_string


def repo(name: str, *actions: str) -> ResourceAccess:
    return ResourceAccess("repository", name, actions)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:acme/app:pull,push", [repo("acme/app", "pull", "push")]),
        ("repository:acme/app:pull", [repo("acme/app", "pull")]),
        ("repository(plugin):x:pull", [ResourceAccess("repository(plugin)", "x", ("pull",))]),
        ("registry:catalog:*", [ResourceAccess("registry", "catalog", ("*",))]),
        ("repository:127.0.0.1:5000/acme/app:pull", [repo("127.0.0.1:5000/acme/app", "pull")]),
        ("repository:a/b:pull repository:c:push", [repo("a/b", "pull"), repo("c", "push")]),
        ("  repository:a:pull\trepository:b:pull  ", [repo("a", "pull"), repo("b", "pull")]),
        ("repository:a:pull,,push,", [repo("a", "pull", "push")]),
        ("repository:a:pull,pull,push,pull", [repo("a", "pull", "push")]),
        ("repository:a:", []),
        ("repository:a:,,", []),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_scope(text: str, expected: list[ResourceAccess]) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:acme",
        ":acme/app:pull",
        "repository::pull",
        "Repository:a:pull",
        "repo sitory:a:pull",
        "repository(:a:pull",
        "repository(plugin)x:a:pull",
        "repository:a:PULL",
        "repository:a:pull;rm",
        'repository:"a":pull',
        "repository:a\x00b:pull",
        "répository:a:pull",
        "repository:ä:pull",
        "repository:" + "a" * 600 + ":pull",
        "repository:a:pull repository:b",
    ],
)
def test_parse_scope_rejects_garbage(text: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scope(text)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200


def test_parse_scopes_merges_duplicates_in_stable_order() -> None:
    values = [
        "repository:a:pull",
        "repository:b:pull repository:a:push",
        "registry:catalog:*",
        "repository:a:pull,delete",
        "repository(plugin):a:pull",
    ]
    assert parse_scopes(values) == [
        repo("a", "pull", "push", "delete"),
        repo("b", "pull"),
        ResourceAccess("registry", "catalog", ("*",)),
        ResourceAccess("repository(plugin)", "a", ("pull",)),
    ]


def test_parse_scopes_of_nothing_is_empty() -> None:
    assert parse_scopes([]) == []
    assert parse_scopes(["", "repository:a:"]) == []


def test_parse_scopes_propagates_errors() -> None:
    with pytest.raises(ScopeError):
        parse_scopes(["repository:a:pull", "garbage"])


@pytest.mark.parametrize(
    "text",
    ["repository:acme/app:pull,push", "registry:catalog:*", "repository(plugin):x:pull", "repository:h:5000/a:pull"],
)
def test_scope_string_round_trips(text: str) -> None:
    (access,) = parse_scope(text)
    assert scope_string(access) == text
    assert parse_scope(scope_string(access)) == [access]


def test_intersect_keeps_only_granted_actions_in_requested_order() -> None:
    requested = [repo("alice/app", "push", "pull"), repo("bob/app", "pull", "push"), repo("secret", "pull")]
    grants = {"alice/app": ("pull", "push", "delete"), "bob/app": ("pull",)}
    seen: list[ResourceAccess] = []

    def allowed(access: ResourceAccess) -> tuple[str, ...]:
        seen.append(access)
        return grants.get(access.name, ())

    assert intersect(requested, allowed) == [repo("alice/app", "push", "pull"), repo("bob/app", "pull")]
    assert seen == requested


def test_intersect_granting_nothing_is_not_an_error() -> None:
    assert intersect([repo("a", "pull", "push")], lambda _access: ()) == []
    assert intersect([], lambda _access: ("pull",)) == []


def test_intersect_wildcard_is_an_action_like_any_other() -> None:
    catalog = ResourceAccess("registry", "catalog", ("*",))
    assert intersect([catalog], lambda _access: ("pull",)) == []
    assert intersect([catalog], lambda _access: ("*",)) == [catalog]


def test_claim_form_round_trips() -> None:
    access = repo("acme/app", "pull", "push")
    claim = access.as_claim()
    assert claim == {"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}
    assert ResourceAccess.from_claim(claim) == access
    assert ResourceAccess.from_claim({**claim, "class": "image"}) == access


@pytest.mark.parametrize(
    "entry",
    [
        "repository:a:pull",
        ["repository", "a", ["pull"]],
        {"name": "a", "actions": ["pull"]},
        {"type": "repository", "actions": ["pull"]},
        {"type": "repository", "name": "a"},
        {"type": "repository", "name": "a", "actions": "pull"},
        {"type": "repository", "name": "a", "actions": [1]},
        {"type": 1, "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": None, "actions": ["pull"]},
    ],
)
def test_from_claim_rejects_malformed_entries(entry: object) -> None:
    with pytest.raises(ScopeError):
        ResourceAccess.from_claim(entry)

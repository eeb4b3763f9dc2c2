"""Name rules for slugs and usernames (polyaxon-v0.md 4.1)."""

from __future__ import annotations

import pytest

from app.logic.names import (
    BLACKLIST,
    NAME_MAX,
    PROJECT_NAME_MAX,
    validate_name,
    validate_project_name,
    validate_username,
)


@pytest.mark.parametrize("name", ["foo", "Foo-bar_1", "a", "-", "x" * PROJECT_NAME_MAX])
def test_valid_project_names(name):
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "must not be empty"),
        ("x" * (PROJECT_NAME_MAX + 1), "at most 128"),
        ("foo bar", "slug"),
        ("foo.bar", "slug"),
        ("foo/bar", "slug"),
        ("é", "slug"),
        ("foo\n", "slug"),
        ("\nfoo", "slug"),
        ("admin", "reserved"),
        ("Projects", "reserved"),
        ("statuses", "reserved"),
    ],
)
def test_invalid_project_names(name, reason):
    with pytest.raises(ValueError, match=reason):
        validate_project_name(name)


def test_other_names_allow_256():
    assert validate_name("x" * NAME_MAX) == "x" * NAME_MAX
    with pytest.raises(ValueError, match="at most 256"):
        validate_name("x" * (NAME_MAX + 1))


def test_blacklist_holds_singulars_and_plurals():
    for word in ("user", "users", "experiment", "experiments", "status", "statuses", "search",
                 "searches", "activity", "activities", "token", "healthz"):
        assert word in BLACKLIST


@pytest.mark.parametrize("name", ["alice", "bob_2", "a-b", "me@example", "x+y"])
def test_valid_usernames(name):
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "between 1 and 150"),
        ("x" * 151, "between 1 and 150"),
        ("a.b", "letters, numbers"),
        ("a b", "letters, numbers"),
        ("a/b", "letters, numbers"),
        ("alice\n", "letters, numbers"),
        ("admin", "reserved"),
    ],
)
def test_invalid_usernames(name, reason):
    with pytest.raises(ValueError, match=reason):
        validate_username(name)

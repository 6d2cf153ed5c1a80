"""The quick check of parsed JSON agrees with the walks that say where and why.

`clean_json` lets a clean message skip the detailed walks; it must never call clean what
they would refuse, and should call clean what they accept (else the quick path buys
nothing). Both are compared on generated values that mix every kind of problem."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsense.kit.text import _walk_text_problems, clean_json
from vsense.payloads.schemas import MAX_NESTING, _walk_json_tree

# Clean values, and leaves with one problem each, a few per value at most: each problem
# is then often the only one, which is what a check that overlooks it fails on.
safe_texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
problems = st.sampled_from(
    [math.nan, math.inf, -math.inf, "a\x00b", "\ud800", "x\udfffy", b"bytes", (1, 2), object()]
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    safe_texts,
    safe_texts,
    problems,
)
keys = st.one_of(safe_texts, safe_texts, safe_texts, st.sampled_from(["k\x00", "\udc00"]))
values: Any = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(keys, children, max_size=3),
        st.dictionaries(st.integers(), children, min_size=1, max_size=1),
    ),
    max_leaves=6,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(keys, values, max_size=3))
def test_clean_exactly_when_the_payload_walk_finds_nothing(message: dict[str, Any]) -> None:
    assert clean_json(message, MAX_NESTING) == (not _walk_json_tree(message))


@settings(max_examples=600, deadline=None)
@given(values)
def test_never_clean_when_the_text_walk_finds_a_problem(value: Any) -> None:
    if clean_json(value):
        assert _walk_text_problems(value, ()) == []


def test_depth_is_counted_as_the_payload_walk_counts_it() -> None:
    for depth in (MAX_NESTING - 2, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1):
        message = {"payload": nested(depth)}
        assert clean_json(message, MAX_NESTING) == (not _walk_json_tree(message))
    assert clean_json({"payload": nested(MAX_NESTING - 2)}, MAX_NESTING)
    assert not clean_json({"payload": nested(MAX_NESTING)}, MAX_NESTING)


def test_typical_messages_are_clean() -> None:
    message = {
        "type": "VCZ",
        "timestamp": 1705682525,
        "version": 1,
        "payload": [{"id": "zone", "name": "Entrée", "count": 3, "ratio": 0.5, "tags": None}],
    }
    assert clean_json(message, MAX_NESTING)
    assert not clean_json({**message, "ratio": math.nan}, MAX_NESTING)


PROBLEMS = [math.nan, math.inf, "a\x00b", "\ud800", b"bytes", (1, 2), object(), {1: 2}]


@pytest.mark.parametrize("problem", PROBLEMS, ids=repr)
def test_each_problem_alone_anywhere_is_never_clean(problem: Any) -> None:
    for message in (
        {"payload": problem},
        {"payload": [{"zones": [1, problem]}]},
        {"type": "VCZ", "payload": {"a": {"b": problem}}},
    ):
        assert _walk_json_tree(message)
        assert not clean_json(message, MAX_NESTING)
    for key in ("k\x00", "\udc00"):
        assert not clean_json({"payload": [{key: 1}]}, MAX_NESTING)

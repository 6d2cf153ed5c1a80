"""What a client's text may hold before the platform stores or forwards it.

One place for every text that comes from outside (request bodies, device messages, even
the fields a model ignores but the payload log keeps): a NUL character cannot be stored
by PostgreSQL, and a lone UTF-16 surrogate (JSON `"\\ud800"`, which Python's JSON reader
accepts) cannot be encoded as UTF-8, so it would be stored and then fail every later
read of the payload log and every webhook body that carries it.
"""

from __future__ import annotations

import math
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 9110 field values: visible characters, spaces and tabs (and obs-text); every other
# control character (CR and LF above all) could never be sent.
_HEADER_VALUE_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone UTF-16 surrogate (not valid Unicode)"
    return None


def clean_json(value: Any, max_depth: int = 1_000_000) -> bool:
    """Whether a parsed JSON value is surely clean: objects and arrays nested at most
    `max_depth` deep (the value itself is at depth 1), string keys, finite numbers,
    nothing but JSON values, and no key or string that `text_problem` refuses.

    The quick answer for the common case, one pass without paths: the walks that say
    where and why (`json_text_problems`, the payload log's own) run only when this says
    False, so that a clean batch of device messages is not walked twice as slowly for
    errors it does not have. False for anything unusual (a subclass of dict, say): the
    detailed walk then decides."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return False
        if type(node) is dict:
            for key in node:
                if type(key) is not str or "\x00" in key:
                    return False
                if not key.isascii() and _SURROGATE.search(key):
                    return False
            items = node.values()
        else:
            items = node
        for item in items:
            kind = type(item)
            if kind is str:
                if "\x00" in item or (not item.isascii() and _SURROGATE.search(item)):
                    return False
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif not (kind is int or kind is bool or item is None):
                return False
    return True


def json_text_problems(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    """(dotted path, problem) of every key and string in a parsed JSON value that
    `text_problem` refuses; iterative, so that hostile nesting costs no stack."""
    if clean_json(value):
        return []
    return _walk_text_problems(value, path)


def _walk_text_problems(value: Any, path: tuple[str | int, ...]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                problems.append((dotted(where), problem))
        elif isinstance(item, dict):
            children: list[tuple[Any, tuple[str | int, ...]]] = []
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    problems.append((dotted(where), f"a key {problem}"))
                children.append((child, (*where, key)))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in reversed(list(enumerate(item))))
    return problems


def dotted(path: tuple[str | int, ...]) -> str:
    """`payload.3.count` for ("payload", 3, "count"); `body` for the whole document."""
    return ".".join(str(part) for part in path) or "body"


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be an HTTP header name, or None."""
    if not _HEADER_NAME.fullmatch(name):
        return "a header name must be an HTTP token (letters, digits, -, ...)"
    return None


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None."""
    if problem := text_problem(value):
        return problem
    if _HEADER_VALUE_CONTROL.search(value):
        return "a header value must be one line without control characters"
    return None

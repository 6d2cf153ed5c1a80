"""Form fields to the API's request bodies: the console validates with the API's models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request


async def form_dict(request: Request, names: Iterable[str]) -> dict[str, str]:
    """The named text fields the form sent (absent ones are left out)."""
    form = await request.form()
    found: dict[str, str] = {}
    for name in names:
        value = form.get(name)
        if isinstance(value, str):
            found[name] = value.strip()
    return found


async def form_list(request: Request, name: str) -> list[str]:
    """Every value of a repeated field (checkboxes, multiple selects)."""
    form = await request.form()
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def none_if_blank(fields: dict[str, str], keep_blank: Iterable[str] = ()) -> dict[str, Any]:
    """A blank field means "none" (null in the API), except those kept as empty text."""
    kept = set(keep_blank)
    return {k: (v if v or k in kept else None) for k, v in fields.items()}


def name_values(text: str) -> list[dict[str, str]]:
    """`Name: value` lines (headers) or `name=value` lines (parameters) as the API's
    list of `{name, value}`; blank lines are skipped."""
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        separator = (
            ":" if ":" in line and ("=" not in line or line.index(":") < line.index("=")) else "="
        )
        name, _, value = line.partition(separator)
        pairs.append({"name": name.strip(), "value": value.strip()})
    return pairs


def name_values_text(pairs: Iterable[Any], separator: str) -> str:
    return "\n".join(f"{p.name}{separator} {p.value}".replace("= ", "=") for p in pairs)

"""How the client commands print: rich tables for people, the API's JSON for scripts.

In JSON mode stdout carries the API's JSON and nothing else; notes, progress and
errors go to stderr in both modes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsense.client.models import APIModel, Page

ONLINE = Text("● online", style="green")
OFFLINE = Text("○ offline", style="red")


def online_mark(is_online: int | bool) -> Text:
    """The online/offline mark of a device."""
    return ONLINE if is_online else OFFLINE


def span(seconds: float) -> str:
    """A duration as `3 min`, `2 h`, `4 d` or `12 s`."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def ago(seconds: float) -> str:
    """How long ago (negative: how long ahead) a moment is: `3 min ago`, `in 2 h`."""
    if abs(seconds) < 5:
        return "just now"
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(-seconds)}"


def when(value: datetime | None, *, short: bool = False, now: datetime | None = None) -> str:
    """A time as `2026-11-28 14:05:00Z (3 min ago)`; `short`: `3 min ago` within a day,
    else `2026-11-28 14:05Z`. `-` for none."""
    if value is None:
        return "-"
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if short:
        if abs(seconds) < 86400:
            return ago(seconds)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{text} ({ago(seconds)})"


def text(value: Any) -> str:
    """A cell: `-` for nothing, lists joined with commas."""
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)


Row = Sequence[str | Text]
# Columns never wrapped: identifiers must stay whole to be copied.
WHOLE = frozenset({"ID", "UUID", "REQUEST", "WEBHOOK-ID", "STATUS", "PREFIX"})
# Width of tables when stdout is not a terminal (a pipe, a file) and COLUMNS is unset.
PIPE_WIDTH = 160


def _width() -> int | None:
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None  # rich measures the terminal or reads COLUMNS
    return PIPE_WIDTH


Render = Callable[[Any], None]


class Printer:
    """Prints results in the chosen format."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.console = Console(highlight=False, soft_wrap=False, width=_width())
        self.stderr = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def json_mode(self) -> bool:
        return self.output == "json"

    def json(self, data: Any) -> None:
        """Write JSON to stdout (plain: no colours, no wrapping)."""
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        """One JSON value on one line (a stream of results: JSON Lines)."""
        sys.stdout.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def result(self, model: APIModel, render: Callable[[Any], None]) -> None:
        """One API answer: its JSON in JSON mode, else rendered for people."""
        if self.json_mode:
            self.json(model.api_json())
        else:
            render(model)

    def page(self, page: Page[Any], render: Callable[[list[Any]], None], noun: str) -> None:
        """One page of a list, with where it stands in the whole."""
        if self.json_mode:
            self.json(page.api_json())
            return
        render(page.data)
        meta = page.meta
        if meta is None:
            self.console.print(f"{len(page.data)} {noun}", style="dim")
        elif meta.total == 0:
            self.console.print(f"no {noun}", style="dim")
        else:
            more = f"; next: --page {meta.current_page + 1}" if page.has_next_page else ""
            self.console.print(
                f"{meta.from_}-{meta.to} of {meta.total} {noun} "
                f"(page {meta.current_page}/{meta.last_page}{more})",
                style="dim",
            )

    def every(
        self, items: Iterable[APIModel], render: Callable[[list[Any]], None], noun: str
    ) -> None:
        """Every item of a list (all pages): `{"data": [...]}` in JSON mode."""
        collected = list(items)
        if self.json_mode:
            self.json({"data": [item.api_json() for item in collected]})
            return
        render(collected)
        self.console.print(f"{len(collected)} {noun}", style="dim")

    def table(
        self, columns: Sequence[str], rows: Iterable[Row], *, title: str | None = None
    ) -> None:
        table = Table(
            box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False
        )
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column in WHOLE)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def fields(self, pairs: Iterable[tuple[str, str | Text]], *, title: str | None = None) -> None:
        """One object as a two-column table of its fields."""
        table = Table(box=None, show_header=False, title=title, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in pairs:
            table.add_row(name, value)
        self.console.print(table)

    def lines(self, lines: Iterable[str]) -> None:
        """Lines never wrapped (links: a terminal may fold them, but they copy whole)."""
        for line in lines:
            self.console.print(line, markup=False, soft_wrap=True)

    def done(self, message: str) -> None:
        """What a command did, for people: stdout in table mode, stderr in JSON mode."""
        (self.stderr if self.json_mode else self.console).print(message, markup=False)

    def note(self, message: str) -> None:
        """A remark on stderr (never mixed into results)."""
        self.stderr.print(message, style="dim", markup=False)

    def secret(self, label: str, value: str) -> None:
        """A value the API shows once (token, secret): said loudly in table mode."""
        if not self.json_mode:
            line = Text(f"{label} (shown once, keep it now): ", style="bold yellow")
            self.console.print(line + Text(value))

    def error(self, message: str) -> None:
        """One line on stderr."""
        self.stderr.print(Text(f"error: {message}"), style="red", soft_wrap=True)

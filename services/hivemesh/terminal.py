"""How the ``hivemesh`` commands print for a person: aligned tables and key-value summaries with
``rich``, in colour only when the output is a terminal (and ``NO_COLOR`` is unset), plain text
otherwise, so piped output stays greppable. ``--json`` output does not come through here."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout by default): colour on a terminal only, no wrapping of
    long lines into the terminal's width when the output is not one."""
    target = stream or sys.stdout
    terminal = target.isatty()
    return Console(
        file=target,
        highlight=False,
        soft_wrap=not terminal,
        width=None if terminal else 10_000,
    )


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, stream: TextIO | None = None) -> None:
    """Print ``rows`` under ``columns``, aligned; nothing when there are no rows."""
    rows = list(rows)
    if not rows:
        return
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    _print(grid, stream)


def summary(fields: Iterable[tuple[str, str, str]], *, stream: TextIO | None = None) -> None:
    """Print ``(name, value, style)`` lines with the values aligned (``style`` "" for none)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value, style in fields:
        grid.add_row(name, Text(value, style=style))
    _print(grid, stream)


def _print(renderable: Table, stream: TextIO | None) -> None:
    """Print ``renderable`` without the blanks that pad its last column."""
    out = console(stream)
    with out.capture() as captured:
        out.print(renderable)
    lines = [text.rstrip() for text in captured.get().splitlines()]
    out.file.write("\n".join(lines) + "\n")
    out.file.flush()


def line(text: str, style: str = "", *, stream: TextIO | None = None) -> None:
    """Print one line (``style`` applies on a terminal only)."""
    console(stream).print(Text(text, style=style))


STATE_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELED": "yellow",
    "INPUT_REQUIRED": "cyan",
    "WORKING": "blue",
    "SUBMITTED": "",
}

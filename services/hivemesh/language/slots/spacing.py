"""Runs of white space as one character: a space, or a newline when the run holds one (a newline
separates requests and stops a number written in words).

Readers see text in this form. Their patterns allow for any amount of space between words
(``\\s+``), and on a long run of spaces a backtracking pattern tries every way of sharing the run
between its parts: quadratic or worse in the run's length. With every run one character long,
each position of the text is tried a bounded number of times.
"""

from __future__ import annotations

import re

_RUN = re.compile(r"\s+")


def _one(match: re.Match[str]) -> str:
    return "\n" if "\n" in match.group() else " "


def squeeze_spaces(text: str) -> str:
    """``text`` with each run of white space replaced by one space or one newline."""
    return _RUN.sub(_one, text)

"""Searches that stay linear in the length of the text.

Python's ``re`` backtracks. A pattern tried from every position of a text, each attempt reading to
the end of the text before it fails, costs the square of the text's length: 16 KiB of text (what
Understand accepts) then takes seconds. The readers avoid it in these ways:

- Runs of white space are one character (``spacing``), so ``\\s+`` has one way to match.
- A pattern that can only match a tail of the text (it ends in ``$`` and its parts accept a known
  set of characters) is searched from where such a tail can start at the earliest
  (``suffix_start``): no match can begin before.
- A pattern whose next word runs to the end of a run of word characters is tried from the start of
  the run only: from any later position in the run it would match the same way, or not at all.
- A pattern whose first attempt decides for every later one is tried once (``lists._search``).

These change what a search costs, not what it finds, with three exceptions, each stated where it is
made: after "how many" a unit is at most four words, a conversion looks at its first 32 numbers,
and a list name's source text keeps a quote or hyphen that starts it.
tests/language/test_slots_linear.py checks each against the plain search on generated text.
"""

from __future__ import annotations

import functools
import re


@functools.cache
def _run_to_end(chars: str) -> re.Pattern[str]:
    # Only from where a run of ``chars`` starts: from inside a run, the attempt would read the rest
    # of the run again.
    return re.compile(rf"(?<![{chars}])[{chars}]*\Z")


def suffix_start(text: str, chars: str, end: int | None = None) -> int:
    """Where the longest run of ``chars`` (the body of a character class, e.g. ``\\s.!?``) that
    ends at ``end`` (default: the end of ``text``) starts; ``end`` itself when there is none."""
    stop = len(text) if end is None else end
    found = _run_to_end(chars).search(text, 0, stop)
    return stop if found is None else found.start()


def last_line(text: str) -> int:
    """Where the last line of ``text`` starts; a final newline ends that line, as for ``$``."""
    body = text[:-1] if text.endswith("\n") else text
    return body.rfind("\n") + 1

"""Numbers written in words or digits, turned into digits inside the surrounding text.

``"one hundred and five"`` -> ``105``, ``"a dozen"`` -> ``12``, ``"three point five"`` -> ``3.5``,
``"two and a half"`` -> ``2.5``, ``"1,200"`` -> ``1200``, ``"negative four"`` -> ``-4``. Words that
are not numbers are left exactly as written, so the result can still be read for other slots.
"""

from __future__ import annotations

import re
from typing import Final

SMALL: Final = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS: Final = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES: Final = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 10**12}
# Words that may follow "a"/"an" and then stand for one of themselves ("a dozen", "a hundred").
_ARTICLE_NUMBERS: Final = frozenset({"hundred", "dozen", *SCALES})

_WORD = re.compile(r"[A-Za-z]+")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NEGATIVE = re.compile(r"\b(?:negative|minus)\s+(?=\d)", re.IGNORECASE)
# Starts only where a run of digits starts: tried inside a long run, it would re-read the rest of
# the run from every digit (quadratic in the run's length).
_AND_A_HALF = re.compile(r"(?<!\d)(\d+(?:\.\d+)?)\s+and\s+a\s+half\b", re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def format_number(value: float) -> str:
    """Digits without a needless ``.0`` (``12``, ``3.5``, ``-0.25``)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _adjacent(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    gap = text[left.end() : right.start()]
    return gap == "-" or (gap.strip() == "" and "\n" not in gap)


def _parse_run(  # noqa: PLR0915 - one state machine reads better whole
    text: str, words: list[re.Match[str]], lowered: list[str], start: int
) -> tuple[float, int] | None:
    """Parse number words beginning at ``words[start]`` (``lowered``: every word in lower case);
    return the value and the index after it."""
    i = start
    if lowered[i] in ("a", "an"):
        if (
            i + 1 >= len(words)
            or lowered[i + 1] not in _ARTICLE_NUMBERS
            or not _adjacent(text, words[i], words[i + 1])
        ):
            return None
        i += 1
    total, current, last, end = 0, 0, "", start
    while i < len(words):
        if i > start and not _adjacent(text, words[i - 1], words[i]):
            break
        w = lowered[i]
        if w in SMALL and w != "oh":
            # "twenty one" continues a run, "five six" and "twenty eleven" do not.
            if last == "small" or (last == "tens" and (current % 10 != 0 or SMALL[w] >= 10)):
                break
            current += SMALL[w]
            last = "small"
        elif w in TENS:
            if last in ("small", "tens"):
                break
            current += TENS[w]
            last = "tens"
        elif w == "hundred":
            if last in ("hundred",):
                break
            current = (current or 1) * 100
            last = "hundred"
        elif w in SCALES:
            total += (current or 1) * SCALES[w]
            current, last = 0, "scale"
        elif w == "dozen":
            current = (current or 1) * 12
            last = "dozen"
        elif w == "and" and last in ("hundred", "scale") and i + 1 < len(words):
            # "one hundred and five": "and" only joins after a scale word, never "two and three".
            nxt = lowered[i + 1]
            if nxt not in SMALL and nxt not in TENS:
                break
            i += 1
            continue
        else:
            break
        i += 1
        end = i
    if not last:
        return None
    value: float = total + current
    # "three point one four"
    if end + 1 < len(words) and lowered[end] == "point" and _adjacent(text, words[end - 1], words[end]):
        digits = []
        j = end + 1
        while j < len(words) and lowered[j] in SMALL and SMALL[lowered[j]] < 10:
            if not _adjacent(text, words[j - 1], words[j]):
                break
            digits.append(str(SMALL[lowered[j]]))
            j += 1
        if digits:
            value = float(f"{int(value)}.{''.join(digits)}")
            end = j
    return value, end


def normalize_numbers(text: str) -> str:
    """Rewrite every number in ``text`` as digits, leaving everything else as it was."""
    text = _THOUSANDS_COMMA.sub("", text)
    words = list(_WORD.finditer(text))
    lowered = [w.group().lower() for w in words]
    out: list[str] = []
    pos, i = 0, 0
    while i < len(words):
        parsed = _parse_run(text, words, lowered, i)
        if parsed is None:
            i += 1
            continue
        value, end = parsed
        out.append(text[pos : words[i].start()])
        out.append(format_number(value))
        pos = words[end - 1].end()
        i = end
    out.append(text[pos:])
    text = "".join(out)
    # "2 and a half" -> 2.5; "minus 40" before a number with nothing to subtract from -> -40.
    text = _AND_A_HALF.sub(lambda m: format_number(float(m.group(1)) + 0.5), text)
    return _unary_minus(text)


def _unary_minus(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        # The character before the word, spaces skipped (each run of spaces is read once).
        at = match.start()
        while at > 0 and text[at - 1].isspace():
            at -= 1
        before = text[at - 1] if at else ""
        word = match.group().split()[0].lower()
        if word == "minus" and (before.isdigit() or before == ")"):
            return match.group()
        return "-"

    return _NEGATIVE.sub(replace, text)


def parse_number(text: str) -> float | None:
    """The number ``text`` is, in words or digits, or None (``"twelve"`` -> 12.0, ``"1,200"`` -> 1200.0)."""
    normalized = normalize_numbers(text.strip())
    if _NUMBER.match(normalized):
        return float(normalized)
    return None

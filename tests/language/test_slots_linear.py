"""Slot reading is linear in the text, and the changes that made it so change no answer.

Each search that read a long text once per position (quadratic) was replaced by one that reads it a
bounded number of times. The plain pattern, as it was written before, stays here as the
specification: on generated text both must give the same answer. Then every reader gets hostile
text at the longest length Understand accepts, and must finish in a small fraction of the time
a quadratic reader takes (seconds).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivemesh.language.slots import (
    compound,
    durations,
    extract,
    extract_slots,
    lists,
    numbers,
    split_compound,
)
from hivemesh.language.slots.dates import find_dates
from hivemesh.language.slots.spacing import squeeze_spaces

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
# The longest text Understand accepts (protos/hivemesh/language/v1: text max_len).
LONGEST = 16384


def text_of(*tokens: str, max_size: int = 24) -> st.SearchStrategy[str]:
    """Text made of the given tokens: the words and punctuation a pattern turns on."""
    return st.lists(st.sampled_from(tokens), max_size=max_size).map("".join)


PUNCTUATION = (" ", " ", ",", ".", "!", "?", "-", "'", '"', "\u201c", "\u201d", ";", ":", "(")
WORDS = ("x", "pasta", "Paris", "1", "12", "a", "the", "my", "for", "in", "at", "list", "timer")


# --- the patterns as they were ----------------------------------------------------------------

OLD_TRAILING = re.compile(r"[\s,]*(?:please|pls|thanks|thank\s+you|for\s+me)?[\s.!?]*$", re.IGNORECASE)
OLD_LIST_TRAILING = re.compile(
    r"\s*(?:please|pls|thanks|thank\s+you|for\s+me|too|as\s+well)\s*[.!?]*$", re.IGNORECASE
)
OLD_LOCATION = re.compile(
    r"\b(?:in|at|for|of|from)\s+(?:the\s+)?(?P<loc>[A-Za-z][\w/ .'\u2019,-]*?)"
    r"(?:\s+(?:right\s+now|now|currently|today|at\s+the\s+moment|time\s*zone|timezone|time))?"
    r"[\s,]*(?:please|pls|thanks)?[\s?.!]*$",
    re.IGNORECASE,
)
OLD_NAMED_LABEL = re.compile(
    r"\b(?:called|named|labell?ed|titled|label(?:\s+it)?)\s+['\"\u201c]?(?P<l>[^'\"\u201d]+?)['\"\u201d]?[\s.!?]*$",
    re.I,
)
OLD_FOR_LABEL = re.compile(
    r"\bfor\s+(?:the\s+|my\s+|a\s+|an\s+|our\s+)?(?P<l>[A-Za-z][\w' -]*?)[\s.!?]*$", re.I
)
OLD_PREFIX_LABEL = re.compile(r"(?P<l>[A-Za-z][\w'-]*(?:\s+[A-Za-z][\w'-]*)?)\s+timer\b", re.I)
OLD_REMEMBER_AFTER = re.compile(
    r"[\s,;.-]*(?:please\s+)?(?:remember|note|save|memori[sz]e|keep)\s+(?:that|this|it)(?:\s+for\s+me)?[\s.!]*$"
    r"|[\s,;.-]*(?:don'?t\s+forget|ok\?|okay\?)[\s.!]*$",
    re.IGNORECASE,
)
OLD_SPELLED = re.compile(r"\b(?P<w>[A-Za-z][\w'-]*)\s+(?:spelled|spelt|spelled\s+out)\b", re.IGNORECASE)
OLD_NAMED_LIST = re.compile(
    r"\b(?:(?:my|the|our|a|this|that|your)\s+)?(?P<name>[\w'-]+(?:\s+[\w'-]+){0,2}?)\s+list\b", re.I
)
OLD_AND_A_HALF = re.compile(r"(\d+(?:\.\d+)?)\s+and\s+a\s+half\b", re.IGNORECASE)


def old_timer_label(rest: str) -> str | None:
    rest = OLD_TRAILING.sub("", rest)
    for pattern in (OLD_NAMED_LABEL, OLD_FOR_LABEL, OLD_PREFIX_LABEL):
        for m in pattern.finditer(rest):
            words = [w for w in m.group("l").split() if w.lower() not in extract._TIMER_STOP]
            label = " ".join(words).strip(" ,.")
            if label and not label.lower().endswith("timer"):
                return label
    return None


def old_component_at(text: str, pos: int) -> tuple[float, int, int] | None:
    best: tuple[float, int, int] | None = None
    for pattern in (durations._COMPONENT, durations._HALF_OF, durations._QUARTER_OF):
        for m in pattern.finditer(text, pos):
            if pattern is durations._COMPONENT:
                num = m.group("num").lower()
                if num in ("a", "an") and len(m.group("unit")) == 1:
                    continue
                amount = 1.0 if num in ("a", "an", "one") else float(num)
            else:
                amount = 0.5 if pattern is durations._HALF_OF else 0.25
            if best is None or m.start() < best[1]:
                best = (amount * durations._seconds(m.group("unit")), m.start(), m.end())
            break
    return best


def old_find_durations(text: str) -> list[tuple[float, int, int]]:
    found: list[tuple[float, int, int]] = []
    pos = 0
    while (first := old_component_at(text, pos)) is not None:
        total, start, end = first
        last_unit = total
        while True:
            half = durations._AND_A_HALF.match(text, end)
            if half:
                total += last_unit / 2
                end = half.end()
                continue
            nxt = old_component_at(text, end)
            if nxt is None or not durations._JOINER.match(text[end : nxt[1]]):
                break
            total += nxt[0]
            last_unit = nxt[0]
            end = nxt[2]
        found.append((total, start, end))
        pos = end
    return found


def span(m: re.Match[str] | None, group: str = "0") -> tuple[int, int, str] | None:
    if m is None:
        return None
    key: int | str = int(group) if group.isdigit() else group
    return (m.start(key), m.end(key), m.group(key))


# --- the same answers ---------------------------------------------------------------------------

FILLER = text_of(
    *PUNCTUATION, *WORDS, "please", "pls", "thanks", "thank", " you", "for me", "\n", "too", "as well"
)


@given(FILLER)
def test_stripping_courtesy_is_unchanged(text: str) -> None:
    assert extract.strip_filler(text) == OLD_TRAILING.sub("", text)


@given(FILLER.map(lambda t: t.replace("\n", " ")))
def test_stripping_courtesy_from_list_requests_is_unchanged(text: str) -> None:
    assert lists._strip_filler(text) == OLD_LIST_TRAILING.sub("", text)


@given(text_of(*PUNCTUATION, *WORDS, "now", "right now", "time", "please", "what time is it ", "/", "\u2019"))
def test_places_are_unchanged(text: str) -> None:
    line = " ".join(text.split())  # as _clean gives it
    assert span(extract._location(line), "loc") == span(OLD_LOCATION.search(line), "loc")


LABELS = text_of(
    *PUNCTUATION, *WORDS, "called", "named", "label it", "1a", "x-", "-y", "_", "\u00e9", "please"
)


@settings(max_examples=300)
@given(LABELS)
def test_timer_labels_are_unchanged(text: str) -> None:
    rest = squeeze_spaces(text)
    assert extract._timer_label(rest) == old_timer_label(rest)


@given(text_of(*PUNCTUATION, *WORDS, "remember that", "note it", "please ", "don't forget", "ok?", "for me"))
def test_remember_endings_are_unchanged(text: str) -> None:
    assert extract._REMEMBER_AFTER.sub("", text) == OLD_REMEMBER_AFTER.sub("", text)


@given(text_of(*PUNCTUATION, *WORDS, "spelled", "spelt", "spelled out", "1a", "x-", "-y", "_", "\u00e9"))
def test_spelled_words_are_unchanged(text: str) -> None:
    text = squeeze_spaces(text)
    new = [m.group("w") for m in extract._SPELLED.finditer(text)]
    old = [m.group("w") for m in OLD_SPELLED.finditer(text)]
    assert new[:1] == old[:1]


@given(text_of(*PUNCTUATION, *WORDS, "shopping", "to-do", "x-", "-y", "'a", "1a", "our ", "list "))
def test_list_names_are_unchanged(text: str) -> None:
    text = squeeze_spaces(text)
    new, old = lists._NAMED_LIST.search(text), OLD_NAMED_LIST.search(text)
    assert span(new, "name") == span(old, "name")
    if old is not None and new is not None:
        # The source may now include hyphens or quotes that lead the name's word.
        assert new.group("named").endswith(old.group())


REQUESTS = text_of(
    *PUNCTUATION,
    *WORDS,
    "add ",
    "put ",
    "remove ",
    "take off ",
    " to ",
    " on ",
    " from ",
    " off ",
    "add to ",
    " list",
    "eggs",
    " and ",
)


@settings(max_examples=300)
@given(REQUESTS)
def test_list_requests_are_read_as_before(text: str) -> None:
    line = " ".join(text.split())
    for verb, pattern in (
        (lists._ADD_TO_FIRST_VERB, lists._ADD_TO_FIRST),
        (lists._REMOVE_VERB, lists._REMOVE),
        (lists._ADD_VERB, lists._ADD),
    ):
        assert span(lists._search(verb, pattern, line)) == span(pattern.search(line))


@settings(max_examples=300)
@given(
    text_of(
        " ", ",", "and ", "a ", "an ", "half ", "quarter of ", "5", "1.5", "m", "min", "hour", "s", "h", "x"
    )
)
def test_durations_are_unchanged(text: str) -> None:
    found = [(d.value.total_seconds(), d.start, d.end) for d in durations.find_durations(text)]
    old = [(t, s, e) for t, s, e in old_find_durations(text)]
    if not old:
        # Both fall back to clock forms ("1:30") the same way.
        return
    assert found == old


def old_unary_minus(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        before = text[: match.start()].rstrip()
        word = match.group().split()[0].lower()
        if word == "minus" and before and (before[-1].isdigit() or before[-1] == ")"):
            return match.group()
        return "-"

    return numbers._NEGATIVE.sub(replace, text)


@given(text_of(*PUNCTUATION, *WORDS, " and a half", "2.5", "minus ", "negative ", ")", "3", "\n"))
def test_numbers_are_unchanged(text: str) -> None:
    def marked(m: re.Match[str]) -> str:
        return f"<{m.group(1)}>"

    assert numbers._AND_A_HALF.sub(marked, text) == OLD_AND_A_HALF.sub(marked, text)
    assert numbers._unary_minus(text) == old_unary_minus(text)


WEAK = text_of(*WORDS, " ", ", ", " and ", " & ", " plus ", "what ", "add ", "remember ", " to ", "please ")


@settings(max_examples=300)
@given(WEAK)
def test_compound_splits_are_unchanged(text: str) -> None:
    clause = squeeze_spaces(text).strip()

    def old_split_weak(rest: str) -> list[str]:
        parts: list[str] = []
        while True:
            cut = None
            for m in compound._WEAK.finditer(rest):
                left, right = rest[: m.start()], rest[m.end() :]
                if len(re.findall(r"\w+", left)) < 2 or len(re.findall(r"\w+", right)) < 2:
                    continue
                if not compound._STARTER.match(right):
                    continue
                if compound._OPAQUE.match(left) and not re.match(
                    r"\s*(?:what|when|where|who|how|which)\b", right, re.I
                ):
                    continue
                if compound._LIST_VERBS.match(left) and not re.search(r"\b(?:to|on|onto|from|off)\b", left):
                    continue
                cut = (left, right)
                break
            if cut is None:
                parts.append(rest)
                return parts
            parts.append(cut[0])
            rest = cut[1]

    assert compound._split_weak(clause) == old_split_weak(clause)


def test_a_yearless_date_takes_the_year_of_the_nearest_date_with_one() -> None:
    dates = find_dates("march 1 2024, june 3, july 4 and may 5 2030", date(2026, 3, 1))
    # "july 4" is nearest "may 5 2030" but written before it, so it is the july of the year before.
    assert [d.value.year for d in dates] == [2024, 2024, 2029, 2030]


# --- linear -------------------------------------------------------------------------------------

HOSTILE = (
    "1", " ", "1 ", "a ", "1.", "1,", "one ", "and ", "- ", "12:", "in ", "x", ". ", "1-", "-1", "a-", "(",
    "the ", "for ", ", ", "....", "!!", "x-y", "1/2 ", "5 minutes ", "1 minute ", "how many x ", "add ",
    "remove x from ", "called x ", "in x , ", "x spelled ", "what time in x ", "x timer ", "\t\n",
)  # fmt: skip


def _hostile(unit: str, tail: str) -> str:
    return ("x " + unit * (LONGEST // len(unit)))[: LONGEST - len(tail)] + tail


def _slowest(text: str) -> float:
    slowest = 0.0
    for run in [lambda: split_compound(text)] + [
        lambda intent=intent: extract_slots(text, intent, now=NOW) for intent in extract._READERS
    ]:
        started = time.perf_counter()
        run()
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


@pytest.mark.parametrize("unit", HOSTILE)
def test_every_reader_reads_the_longest_text_quickly(unit: str) -> None:
    # Linear reading takes tens of milliseconds here; the quadratic readers took seconds (the
    # slowest 17 s), so one second leaves a wide margin for a busy machine.
    for tail in (" y", " ("):
        assert _slowest(_hostile(unit, tail)) < 1.0, (unit, tail)

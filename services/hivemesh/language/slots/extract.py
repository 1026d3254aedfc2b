"""``extract_slots``: the slots of one intent, read from one request.

Each intent has one small reader. Readers work on the text with numbers and ordinals turned into
digits (``prepared``) except where the user's own words are the value (a reminder's text, a fact
to remember, a word to spell), which are cut from what was typed.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final

from hivemesh.language.slots.calculator import normalize_expression
from hivemesh.language.slots.conversion import parse_conversion
from hivemesh.language.slots.dates import DateMention, find_dates, normalize_ordinals, shift
from hivemesh.language.slots.durations import find_durations
from hivemesh.language.slots.generic import generic_slots
from hivemesh.language.slots.lists import names_only_a_list, parse_list_request, split_items
from hivemesh.language.slots.movable import warm_up as build_holidays
from hivemesh.language.slots.numbers import normalize_numbers
from hivemesh.language.slots.scan import suffix_start
from hivemesh.language.slots.spacing import squeeze_spaces
from hivemesh.language.slots.times import find_time
from hivemesh.language.slots.units import registry
from hivemesh.language.slots.values import SlotValue
from hivemesh.mesh.intents import AgentIntent

Reader = Callable[[str, str, datetime], list[SlotValue]]

_PAST = re.compile(r"\b(?:was|were|did|ago|since|last|passed|elapsed|been)\b", re.IGNORECASE)
_POLITE = re.compile(
    r"^\s*(?:(?:hey|hi|ok|okay|please|pls|so|um|uh|yo)[\s,]+|(?:can|could|would|will)\s+you\s+|"
    r"i\s+(?:want|need|would\s+like|'d\s+like)\s+(?:you\s+)?to\s+)*",
    re.IGNORECASE,
)
# What ``strip_filler`` removes: [\s,]*(?:please|pls|thanks|thank\s+you|for\s+me)?[\s.!?]*$
_FILLER_WORD = re.compile(r"(?:please|pls|thanks|thank\s+you|for\s+me)\Z", re.IGNORECASE)


def strip_filler(text: str) -> str:
    """``text`` without trailing courtesy and punctuation: "5 km to miles, please." -> "5 km to miles".

    The regular expression in the comment above does the same, but tried from every position of a
    long run of punctuation it reads the run to its end each time; this reads the end of the text
    once, from the right.
    """
    end = suffix_start(text, r"\s.!?")
    # The filler word, if any, ends where the closing punctuation starts; it is a few characters long.
    word = _FILLER_WORD.search(text, max(0, end - 32), end)
    return text[: suffix_start(text, r"\s,", word.start() if word else end)]


def prepare(text: str) -> str:
    """``text`` with numbers and ordinals as digits ("March third" -> "March 3rd")."""
    return normalize_numbers(normalize_ordinals(text))


def _clean(text: str) -> str:
    return strip_filler(_POLITE.sub("", " ".join(text.split()))).strip(" ,;:-")


def _blank(text: str, start: int, end: int) -> str:
    """``text`` with a span replaced by spaces, so other positions stay valid."""
    return text[:start] + " " * (end - start) + text[end:]


# --- calculator ---------------------------------------------------------------------------------


def _calculator(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    expression = normalize_expression(text)
    return [] if expression is None else [SlotValue.text("expression", _clean(text), expression)]


# --- unit_conversion ----------------------------------------------------------------------------


def _unit_conversion(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    conversion = parse_conversion(prepared)
    slots: list[SlotValue] = []
    if conversion.value is not None and conversion.from_unit is not None:
        slots.append(
            SlotValue.quantity("quantity", conversion.quantity_source, conversion.value, conversion.from_unit)
        )
    if conversion.to_unit is not None:
        slots.append(SlotValue.unit("to_unit", conversion.to_source, conversion.to_unit))
    return slots


# --- current_time -------------------------------------------------------------------------------

_LOCATION = re.compile(
    r"\b(?:in|at|for|of|from)\s+(?:the\s+)?(?P<loc>[A-Za-z][\w/ .'\u2019,-]*?)"
    r"(?:\s+(?:right\s+now|now|currently|today|at\s+the\s+moment|time\s*zone|timezone|time))?"
    # The closing runs start only where a run starts ((?<!...)): tried at every step of the lazy
    # place through a long run, they would read the rest of the run each time.
    r"(?<![\s,])[\s,]*(?:please|pls|thanks)?(?<![\s?.!])[\s?.!]*$",
    re.IGNORECASE,
)
_PLACE_CHARS = r"\w/ .'\u2019,-"


def _location(text: str) -> re.Match[str] | None:
    """``_LOCATION.search(text)``, for text on one line. Every character a match covers before its
    closing punctuation is one a place may hold, so no match starts before the last character
    that is neither."""
    return _LOCATION.search(text, suffix_start(text, _PLACE_CHARS, suffix_start(text, r"\s?.!")))


_LOCATION_BEFORE_TIME = re.compile(
    r"^(?:what(?:'s|\s+is)\s+(?:the\s+)?)?(?P<loc>[A-Za-z][\w/ .'-]*?)\s+time\b", re.I
)
_NOT_LOCATIONS: Final = frozenset(
    {"it", "the morning", "the afternoon", "the evening", "now", "the moment", "here", "the day",
     "my time zone", "my timezone", "my location", "local time", "current", "the current", "what",
     "the time", "time", "day", "the world", "me", "the"}
)  # fmt: skip


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Lower-cased IANA names -> their canonical spelling ("europe/paris" -> "Europe/Paris")."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _tidy_location(raw: str) -> str:
    loc = raw.strip(" ,.?!")
    zone = _zones().get(loc.lower().replace(" ", "_"))
    if zone is not None:
        return zone
    if loc.islower():
        # "new york" -> "New York"; typed capitals ("NYC", "McAllen") are kept as they are.
        return " ".join(
            w.upper() if len(w) <= 2 and w not in ("de", "la") else w.capitalize() for w in loc.split()
        )
    return loc


def _current_time(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    stripped = _clean(text)
    m = _location(stripped)
    if m is None or m.group("loc").strip().lower() in _NOT_LOCATIONS:
        m = _LOCATION_BEFORE_TIME.search(stripped)
    if m is None:
        return []
    raw = m.group("loc").strip()
    raw = re.sub(r"^(?:the\s+)?(?:current\s+)?(?:local\s+)?", "", raw, flags=re.I)
    raw = re.sub(r"\s+(?:right\s+now|now|currently|today)$", "", raw, flags=re.I)
    if not raw or raw.lower() in _NOT_LOCATIONS or raw.lower().startswith(("what", "it ")):
        return []
    return [SlotValue.name_value("location", raw, _tidy_location(raw))]


# --- dates ----------------------------------------------------------------------------------------


def _weekday(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    dates = find_dates(prepared, now.date(), prefer_past=bool(_PAST.search(prepared)))
    if not dates:
        # "what day is it?" asks about today.
        return [SlotValue.date("date", "", now.date())]
    return [SlotValue.date("date", dates[0].text, dates[0].value)]


_OFFSET = r"(?P<n>-?\d+(?:\.\d+)?|an?|one)\s+(?P<unit>days?|weeks?|months?|years?|fortnights?)"
_OFFSET_PATTERNS: Final = (
    # A verb decides the direction first: "subtract 10 days from X" is not "10 days from X".
    re.compile(
        rf"\b(?P<dir>add|plus|subtract|minus|take\s+away|take|go\s+back|go\s+forward)\s+{_OFFSET}", re.I
    ),
    re.compile(
        rf"\b{_OFFSET}\s+(?P<dir>after|before|from|since|past|prior\s+to|later\s+than|earlier\s+than|"
        r"following|preceding|ago|later|earlier|hence|back|on\s+from|out\s+from|into\s+the\s+future)\b",
        re.IGNORECASE,
    ),
    re.compile(rf"\b(?P<dir>in)\s+{_OFFSET}", re.IGNORECASE),
    re.compile(rf"(?P<dir>[+-])\s*{_OFFSET}", re.IGNORECASE),
)
_NEGATIVE_DIRECTIONS: Final = frozenset(
    {"before", "prior to", "earlier than", "preceding", "ago", "earlier", "back", "subtract", "minus",
     "take away", "take", "go back", "-"}
)  # fmt: skip


def _date_arithmetic(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    today = now.date()
    for pattern in _OFFSET_PATTERNS:
        m = pattern.search(prepared)
        if m is None:
            continue
        raw = m.group("n").lower()
        amount = 1.0 if raw in ("a", "an", "one") else float(raw)
        direction = " ".join(m.group("dir").lower().split())
        if direction in _NEGATIVE_DIRECTIONS:
            amount = -amount
        rest = _blank(prepared, m.start(), m.end())
        dates = [
            d for d in find_dates(rest, today, prefer_past=bool(_PAST.search(rest))) if d.kind != "offset"
        ]
        base = dates[0] if dates else None
        base_day = base.value if base else today
        days = (shift(base_day, amount, m.group("unit")) - base_day).days
        return [
            SlotValue.date("date", base.text if base else "", base_day),
            SlotValue.number("offset_days", m.group().strip(), days),
        ]
    dates = find_dates(prepared, today)
    return [SlotValue.date("date", dates[0].text, dates[0].value)] if dates else []


def _days_between(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    today = now.date()
    dates = find_dates(prepared, today, prefer_past=bool(_PAST.search(prepared)))
    if len(dates) >= 2:
        return [
            SlotValue.date("start_date", dates[0].text, dates[0].value),
            SlotValue.date("end_date", dates[1].text, dates[1].value),
        ]
    if len(dates) == 1:
        # "days until Christmas" counts from today, "days since March 3" up to today.
        only: DateMention = dates[0]
        if only.value < today:
            return [
                SlotValue.date("start_date", only.text, only.value),
                SlotValue.date("end_date", "", today),
            ]
        return [SlotValue.date("start_date", "", today), SlotValue.date("end_date", only.text, only.value)]
    return []


# --- timers and reminders -----------------------------------------------------------------------

_TIMER_STOP: Final = frozenset(
    {"set", "start", "a", "an", "the", "my", "new", "create", "make", "me", "please", "up", "countdown",
     "for", "timer", "put", "on", "begin", "run", "minute", "second", "hour", "min", "sec"}
)  # fmt: skip
# The two label patterns that run to the end of the text are searched from where a match can
# start at the earliest (``_label_starts``), and their closing run of punctuation may start only
# where a run starts: otherwise each step of the lazy label through a run reads the rest of it.
_NAMED_LABEL = re.compile(
    r"\b(?:called|named|labell?ed|titled|label(?:\s+it)?)\s+['\"\u201c]?(?P<l>[^'\"\u201d]+?)['\"\u201d]?"
    r"(?<![\s.!?])[\s.!?]*$",
    re.I,
)
_FOR_LABEL = re.compile(r"\bfor\s+(?:the\s+|my\s+|a\s+|an\s+|our\s+)?(?P<l>[A-Za-z][\w' -]*?)[\s.!?]*$", re.I)
# A label word runs to the end of its run of word characters, so it is tried from the run's first
# letter only (the run's leading digits, quotes or hyphens are skipped), not from every letter.
# (So after a match that ends inside such a run, as "timer-pasta timer" does, the rest of that run
# starts no label.)
_PREFIX_LABEL = re.compile(
    r"(?<![\w'-])(?:(?![A-Za-z])[\w'-])*+(?P<l>[A-Za-z][\w'-]*+(?:\s+[A-Za-z][\w'-]*+)?)\s+timer\b", re.I
)
_QUOTES_CLOSING = "'\"\u201d"


def _label_starts(rest: str) -> tuple[int, int]:
    """Where ``_NAMED_LABEL`` and ``_FOR_LABEL`` may start matching ``rest``. Each ends with a run
    of punctuation at the end of ``rest``; before it, a named label holds no closing quote (one may
    close it) and a "for" label only word characters, spaces, hyphens and apostrophes."""
    closing = suffix_start(rest, r"\s.!?")
    quoted = closing - 1 if closing and rest[closing - 1] in _QUOTES_CLOSING else closing
    # The name of a label is at most "label it" and a quote before it: 32 characters back is ample.
    named = max(0, suffix_start(rest, "^" + _QUOTES_CLOSING, quoted) - 32)
    return named, suffix_start(rest, r"\w' -", closing)


def _timer_label(rest: str) -> str | None:
    rest = strip_filler(rest)
    named_from, for_from = _label_starts(rest)
    for pattern, start in ((_NAMED_LABEL, named_from), (_FOR_LABEL, for_from), (_PREFIX_LABEL, 0)):
        for m in pattern.finditer(rest, start):
            words = [w for w in m.group("l").split() if w.lower() not in _TIMER_STOP]
            label = " ".join(words).strip(" ,.")
            if label and not label.lower().endswith("timer"):
                return label
    return None


def _set_timer(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    slots: list[SlotValue] = []
    durations = find_durations(prepared)
    rest = prepared
    if durations:
        d = durations[0]
        slots.append(SlotValue.duration("duration", d.text, d.value))
        rest = rest[: d.start] + " " + rest[d.end :]
        # "a 10 minute timer": the unit word may be left behind as "-minute".
        rest = re.sub(r"^\s*-?\s*(?:minutes?|hours?|seconds?)\b", "", rest)
    label = _timer_label(rest)
    if label:
        slots.append(SlotValue.text("label", label, label))
    return slots


_REMIND = re.compile(
    r"^(?:(?:please|hey|ok|okay)[\s,]+)*(?:(?:can|could|would|will)\s+you\s+)?"
    r"(?:remind\s+me|set\s+(?:up\s+)?(?:a\s+|me\s+a\s+)?reminder|create\s+(?:a\s+)?reminder|add\s+(?:a\s+)?reminder|"
    r"new\s+reminder|reminder|don'?t\s+let\s+me\s+forget|make\s+sure\s+i|i\s+need\s+a\s+reminder)"
    r"[\s,:]*(?:(?:to|that|about|of|for|:)\s+)?",
    re.IGNORECASE,
)
_DANGLING = re.compile(r"\s+(?:on|at|by|in|around|for|this|next|from|after|to)\s*$", re.IGNORECASE)
_DEFAULT_HOUR = time(9, 0)
_LEAD = re.compile(r"\b(?:in|after|within)\s+(?:about\s+|around\s+|another\s+)?$", re.I)


def _due(prepared: str, now: datetime) -> tuple[datetime | None, list[tuple[int, int]], str]:
    """When a reminder is due, the spans that said so, and their text."""
    tz = now.tzinfo
    for d in find_durations(prepared):
        # The words before a duration are a few characters: look there, not through the text before it.
        lead = _LEAD.search(prepared, max(0, d.start - 32), d.start)
        if lead:
            return now + d.value, [(lead.start(), d.end)], prepared[lead.start() : d.end]
    dates = find_dates(prepared, now.date())
    found_time = find_time(prepared)
    spans: list[tuple[int, int]] = []
    sources: list[str] = []
    day: date | None = None
    if dates:
        day = dates[0].value
        spans.append((dates[0].start, dates[0].end))
        sources.append(dates[0].text)
    clock: time | None = None
    if found_time:
        clock = found_time.value
        # "tonight" is both the day and the hour: name it once.
        if not any(start < found_time.end and found_time.start < end for start, end in spans):
            spans.append((found_time.start, found_time.end))
            sources.append(found_time.text)
    if day is None and clock is None:
        return None, [], ""
    if day is None and clock is not None:
        due = datetime.combine(now.date(), clock, tzinfo=tz)
        if due <= now:
            due += timedelta(days=1)
    else:
        assert day is not None
        due = datetime.combine(day, clock or _DEFAULT_HOUR, tzinfo=tz)
        if due <= now:
            # "remind me today to ...": the default hour has passed, so soon rather than never.
            due = now + timedelta(hours=1) if clock is None else due
    return due, spans, " ".join(sources)


def _set_reminder(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    due, spans, source = _due(prepared, now)
    rest = prepared
    for start, end in sorted(spans, reverse=True):
        before = _DANGLING.sub("", rest[:start])
        rest = before + " " + rest[end:]
    body = _REMIND.sub("", " ".join(rest.split()))
    body = re.sub(r"^(?:to|that|about|of|:)\s+", "", strip_filler(body), flags=re.I)
    body = _DANGLING.sub("", body).strip(" ,;:-")
    slots: list[SlotValue] = []
    if body:
        slots.append(SlotValue.text("reminder_text", body, body))
    if due is not None:
        slots.append(SlotValue.date_time("due", source, due))
    return slots


# --- lists ----------------------------------------------------------------------------------------

_LIST_VERB = re.compile(
    r"^(?:add|put|remove|delete|take|cross|strike|drop|buy|get)\s+(?:off\s+)?(?P<items>.+)$", re.IGNORECASE
)


def _list(with_items: bool) -> Reader:
    def read(text: str, prepared: str, now: datetime) -> list[SlotValue]:
        request = parse_list_request(_clean(text))
        slots: list[SlotValue] = []
        if request.list_name:
            slots.append(SlotValue.text("list_name", request.list_source, request.list_name))
        if with_items:
            items, source = request.items, request.items_source
            if not items:
                # "add milk", "remove eggs please": no list named, the rest is the items.
                m = _LIST_VERB.match(_clean(text))
                if m and not names_only_a_list(m.group("items")):
                    source = m.group("items")
                    items = split_items(source)
            if items:
                slots.append(SlotValue.items("items", source, items))
        return slots

    return read


# --- chance, spelling, memory ---------------------------------------------------------------------

# Numbers are read from where their digits start ((?<!\d)): tried from every digit of a long
# number, a pattern re-reads the rest of it each time.
_DND = re.compile(r"(?<![\w])(?:(?P<count>\d+)\s*)?d\s*(?P<sides>\d+)\b", re.IGNORECASE)
_SIDED = re.compile(r"(?<!\d)(?P<sides>\d+)\s*-?\s*(?:sided|side|faced)\b", re.IGNORECASE)
_DICE_COUNT = re.compile(
    r"\b(?P<count>\d+|an?|one|a\s+pair\s+of|pair\s+of|a\s+couple\s+of|couple\s+of)\s+"
    r"(?:\d+\s*-?\s*(?:sided|side|faced)\s+)?(?:dice|die|dices|d\d+s?)\b",
    re.IGNORECASE,
)


def _roll_dice(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    slots: list[SlotValue] = []
    dnd = _DND.search(prepared)
    sided = _SIDED.search(prepared)
    counted = _DICE_COUNT.search(prepared)
    if dnd:
        slots.append(SlotValue.number("sides", dnd.group(), int(dnd.group("sides"))))
    elif sided:
        slots.append(SlotValue.number("sides", sided.group(), int(sided.group("sides"))))
    if counted:
        raw = " ".join(counted.group("count").lower().split())
        count = {"a": 1, "an": 1, "one": 1}.get(raw, 2 if "pair" in raw or "couple" in raw else None)
        value = count if count is not None else int(raw)
        slots.append(SlotValue.number("count", counted.group(), value))
    elif dnd and dnd.group("count"):
        slots.append(SlotValue.number("count", dnd.group(), int(dnd.group("count"))))
    return slots


_QUOTED = re.compile(r"[\"'\u201c\u2018](?P<w>[^\"'\u201d\u2019]+?)[\"'\u201d\u2019](?!\w)")
# The word runs to the end of its run of word characters, hyphens and apostrophes, so it is tried
# from the run's first letter at a word boundary only, not from every such letter.
_SPELLED = re.compile(
    r"(?<![\w'-])(?:(?!\b[A-Za-z])[\w'-])*+(?P<w>[A-Za-z][\w'-]*+)\s+(?:spelled|spelt|spelled\s+out)\b",
    re.IGNORECASE,
)
_SPELL = re.compile(
    r"\bspell(?:ing|ed)?(?:\s+(?:out|of|for|me|the|word|it|correctly|properly|right))*\s+(?P<w>[A-Za-z][\w'-]*)",
    re.IGNORECASE,
)
# "what letters make up X", "the word X", "spell-check X", "how do you write X".
_SPELL_OTHER = re.compile(
    r"\b(?:the\s+word|letters\s+(?:in|of)|make\s+up|spell-?check|write(?:\s+the\s+word)?)\s+(?P<w>[A-Za-z][\w'-]*)",
    re.IGNORECASE,
)
_SPELL_AFTER: Final = frozenset({"please", "for", "me", "the", "word", "out", "again", "it", "this"})


def _spell(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    quoted = _QUOTED.search(text)
    if quoted:
        word = quoted.group("w").strip()
        return [SlotValue.text("word", quoted.group(), word)]
    cleaned = _clean(text)
    for pattern in (_SPELLED, _SPELL, _SPELL_OTHER):
        for m in pattern.finditer(cleaned):
            word = m.group("w")
            if word.lower() not in _SPELL_AFTER and word.lower() not in ("is", "do", "you", "to", "how"):
                return [SlotValue.text("word", word, word)]
    return []


_REMEMBER = re.compile(
    r"^(?:(?:please|hey|ok|okay|so)[\s,]+)*(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?"
    r"(?:i\s+want\s+you\s+to\s+|i'?d\s+like\s+you\s+to\s+|try\s+to\s+|you\s+should\s+)?"
    r"(?:remember|memori[sz]e|note(?:\s+down)?|make\s+a\s+note|take\s+(?:a\s+)?note|keep\s+in\s+mind|"
    r"don'?t\s+forget|do\s+not\s+forget|never\s+forget|save|store|learn|fyi|for\s+your\s+information|"
    r"just\s+so\s+you\s+know|remember\s+this)"
    r"(?:\s+(?:that|this|the\s+fact\s+that|of\s+the\s+fact\s+that|for\s+me|for\s+later))*[\s,:]*",
    re.IGNORECASE,
)
# Tried only where a run of [\s,;.-] starts: a match from inside a run is one from its start too.
_REMEMBER_AFTER = re.compile(
    r"(?<![\s,;.-])[\s,;.-]*(?:please\s+)?(?:remember|note|save|memori[sz]e|keep)\s+(?:that|this|it)(?:\s+for\s+me)?[\s.!]*$"
    r"|(?<![\s,;.-])[\s,;.-]*(?:don'?t\s+forget|ok\?|okay\?)[\s.!]*$",
    re.IGNORECASE,
)


def _remember(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    stripped = " ".join(text.split())
    fact = _REMEMBER_AFTER.sub("", _REMEMBER.sub("", stripped, count=1))
    fact = strip_filler(fact).strip(" ,;:-")
    return [SlotValue.text("fact", fact, fact)] if fact else []


_RECALL_LEAD = re.compile(
    r"^(?:(?:hey|ok|okay|so|please)[\s,]+)*(?:(?:do|can|could|would)\s+you\s+(?:please\s+)?"
    r"(?:remember|recall|tell\s+me|remind\s+me)|what\s+do\s+you\s+(?:know|remember)\s+about|"
    r"what\s+did\s+i\s+(?:tell|say\s+to)\s+you\s+about|remind\s+me|tell\s+me|recall)\s*(?:that\s+|about\s+)?",
    re.IGNORECASE,
)


def _recall(text: str, prepared: str, now: datetime) -> list[SlotValue]:
    stripped = " ".join(text.split()).strip()
    query = strip_filler(_RECALL_LEAD.sub("", stripped, count=1)).strip(" ,;:-")
    query = query or strip_filler(stripped)
    return [SlotValue.text("query", query, query)] if query else []


_READERS: Final[dict[str, Reader]] = {
    "calculator": _calculator,
    "unit_conversion": _unit_conversion,
    "current_time": _current_time,
    "weekday": _weekday,
    "date_arithmetic": _date_arithmetic,
    "days_between": _days_between,
    "set_timer": _set_timer,
    "set_reminder": _set_reminder,
    "list_add": _list(with_items=True),
    "list_remove": _list(with_items=True),
    "list_show": _list(with_items=False),
    "list_clear": _list(with_items=False),
    "roll_dice": _roll_dice,
    "spell": _spell,
    "remember": _remember,
    "recall": _recall,
}


# Intents whose requests carry nothing to read.
_WITHOUT_SLOTS: Final = frozenset({AgentIntent.GREETING, AgentIntent.OUT_OF_SCOPE, ""})


def warm_up() -> None:
    """Build what readers build on first use (pint's unit registry, the time zone names, this year's
    and next year's holidays): a tenth of a second of work that would otherwise hold up the first
    request that needs it."""
    registry()
    _zones()
    build_holidays(datetime.now(UTC).year)


def extract_slots(text: str, intent: str, *, now: datetime) -> list[SlotValue]:
    """The slots ``intent`` takes, read from ``text``; relative dates resolve against ``now``.

    ``now`` must be timezone-aware: reminders are due in its zone. Greetings and out-of-scope
    requests yield no slots; an intent without a reader of its own (one a tool declares) yields the
    generic slots (see ``generic``). Runs of white space are
    read as one (see ``spacing``), so source texts have single spaces.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if intent in _WITHOUT_SLOTS or not text.strip():
        return []
    text = squeeze_spaces(text)
    reader = _READERS.get(intent)
    if reader is None:
        return generic_slots(prepare(text))
    return reader(text, prepare(text), now)

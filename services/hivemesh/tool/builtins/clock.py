"""Date and time: the time now in a zone or city, the weekday of a date, date arithmetic and the
days between two dates."""

from __future__ import annotations

import zoneinfo
from datetime import date, timedelta
from typing import Annotated, TypedDict

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolContext, ToolOutput
from hivemesh.world.places import zone_of

DATE = Arg(pattern=r"^\d{4}-\d{2}-\d{2}$", format="date", description="A date, YYYY-MM-DD.")
MAX_DAYS = 366_000


def resolve_zone(location: str, field: str = "arguments.location") -> zoneinfo.ZoneInfo:
    """The zone of an IANA name or a city (any city of 15,000 people or more, see ``world.places``)."""
    name = zone_of(location)
    if name is None:
        raise InvalidArgument.field(
            field, f"unknown time zone or city {location!r}", reason="UNKNOWN_LOCATION"
        )
    return zoneinfo.ZoneInfo(name)


def parse_date(field: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(
            field, f"{text!r} is not a date on the calendar", reason="INVALID_DATE"
        ) from None


def _long(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B} {day.year}"


class TimeResult(TypedDict):
    location: str
    time_zone: str
    iso: str
    date: str
    time: str
    utc_offset: str


@tool(
    name="current_time",
    result=TimeResult,
    timeout_s=2.0,
    serves=Serves("current_time", {"location": Fill("location")}),
)
def current_time(context: ToolContext, location: Annotated[str, Arg(max_length=128)] = "") -> ToolOutput:
    """The current date and time in a time zone (IANA name such as "Europe/Paris") or a city.

    Args:
        location: An IANA time zone or a city name; the user's own time zone when left out (UTC
            when the request names none).
    """
    zone = resolve_zone(location) if location.strip() else context.zone
    location = location.strip() or zone.key
    now = context.deps.clock().astimezone(zone)
    offset = now.strftime("%z")
    value: TimeResult = {
        "location": location,
        "time_zone": zone.key,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M"),
        "utc_offset": f"{offset[:3]}:{offset[3:]}",
    }
    return ToolOutput(dict(value), f"{now:%H:%M} on {_long(now.date())} ({zone.key})")


class WeekdayResult(TypedDict):
    date: str
    weekday: str


@tool(
    result=WeekdayResult,
    timeout_s=2.0,
    serves=Serves("weekday", {"date": Fill("date", question="Which date do you mean?")}),
)
def weekday(date: Annotated[str, DATE]) -> ToolOutput:
    """The day of the week of a date."""
    day = parse_date("arguments.date", date)
    return ToolOutput({"date": day.isoformat(), "weekday": f"{day:%A}"}, f"{day:%A}")


class DateResult(TypedDict):
    date: str
    weekday: str


@tool(
    name="date_add",
    result=DateResult,
    timeout_s=2.0,
    serves=Serves(
        "date_arithmetic",
        {
            "date": Fill("date", question="Starting from which date?"),
            "days": Fill("offset_days", question="How many days should I add or subtract?"),
        },
    ),
)
def date_add(
    date: Annotated[str, DATE],
    days: Annotated[int, Arg(minimum=-MAX_DAYS, maximum=MAX_DAYS)],
) -> ToolOutput:
    """The date a number of days after (or, negative, before) a date.

    Args:
        date: The date to count from, YYYY-MM-DD.
        days: Days to add; negative counts back.
    """
    start = parse_date("arguments.date", date)
    try:
        result = start + timedelta(days=days)
    except OverflowError:
        raise InvalidArgument.field(
            "arguments.days", "the result is outside years 1 to 9999", reason="DATE_OUT_OF_RANGE"
        ) from None
    return ToolOutput({"date": result.isoformat(), "weekday": f"{result:%A}"}, _long(result))


class DaysResult(TypedDict):
    days: int
    start: str
    end: str


@tool(
    name="days_between",
    result=DaysResult,
    timeout_s=2.0,
    serves=Serves(
        "days_between",
        {
            "start": Fill("start_date", question="From which date?"),
            "end": Fill("end_date", question="Until which date?"),
        },
    ),
)
def days_between(start: Annotated[str, DATE], end: Annotated[str, DATE]) -> ToolOutput:
    """The number of days from one date to another (negative when the end comes first).

    Args:
        start: The first date, YYYY-MM-DD.
        end: The second date, YYYY-MM-DD.
    """
    first, last = parse_date("arguments.start", start), parse_date("arguments.end", end)
    days = (last - first).days
    return ToolOutput(
        {"days": days, "start": first.isoformat(), "end": last.isoformat()},
        f"{days} day" if abs(days) == 1 else f"{days} days",
    )

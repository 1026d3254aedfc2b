"""Dates of a month, movable holidays and reminders read in the user's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hivemesh.language.slots import SlotValue, extract_slots
from hivemesh.language.slots.movable import holiday_date

# Saturday 5 December 2026, mid-morning in New York.
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=NEW_YORK)


def slots(text: str, intent: str, now: datetime = NOW) -> dict[str, SlotValue]:
    return {s.name: s for s in extract_slots(text, intent, now=now)}


def test_a_reminder_on_the_first_monday_of_march_keeps_its_text() -> None:
    found = slots("remind me to vote on the first monday of march", "set_reminder")
    assert found["reminder_text"].value == "vote"
    assert found["due"].value == datetime(2027, 3, 1, 9, 0, tzinfo=NEW_YORK)


def test_a_reminder_is_due_at_the_hour_of_the_users_zone() -> None:
    tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))  # already Sunday 6 December there
    due = slots("remind me at 5pm to call mum", "set_reminder", tokyo)["due"].value
    assert isinstance(due, datetime)
    assert due == datetime(2026, 12, 6, 17, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert due.utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what day is the first monday of march", date(2027, 3, 1)),
        ("what's the date of the 2nd tuesday of january 2027", date(2027, 1, 12)),
        ("what date is the last friday of the month", date(2026, 12, 25)),
        ("what date is the first sunday of next month", date(2027, 1, 3)),
        ("what date is the third thursday of november 2027", date(2027, 11, 18)),
        ("what day is the end of the month", date(2026, 12, 31)),
        ("what day is the end of february", date(2027, 2, 28)),
        ("what day is the end of next month", date(2027, 1, 31)),
        ("what day is thanksgiving 2027", date(2027, 11, 25)),
        ("what day is easter", date(2027, 3, 28)),
        ("what day is labor day 2027", date(2027, 9, 6)),
    ],
)
def test_dates_of_a_month_and_movable_holidays(text: str, expected: date) -> None:
    assert slots(text, "weekday")["date"].value == expected


def test_a_fifth_weekday_a_month_lacks_is_no_date() -> None:
    # "What day is ...?" without a date it can read asks about today.
    assert slots("what day is the fifth monday of february 2027", "weekday")["date"].value == NOW.date()


def test_days_until_thanksgiving_count_to_the_next_one() -> None:
    found = slots("how many days until thanksgiving", "days_between")
    assert found["start_date"].value == date(2026, 12, 5)
    assert found["end_date"].value == date(2027, 11, 25)
    past = slots("how many days has it been since labor day", "days_between")
    assert past["start_date"].value == date(2026, 9, 7)


def test_an_hour_and_a_half() -> None:
    assert slots("set a timer for an hour and a half", "set_timer")["duration"].value == timedelta(minutes=90)
    due = slots("remind me in an hour and a half to stretch", "set_reminder")
    assert due["due"].value == NOW + timedelta(minutes=90)
    assert due["reminder_text"].value == "stretch"


def test_a_reminder_at_the_end_of_the_month() -> None:
    found = slots("remind me at the end of the month to pay rent", "set_reminder")
    assert found["reminder_text"].value == "pay rent"
    assert found["due"].value == datetime(2026, 12, 31, 9, 0, tzinfo=NEW_YORK)


def test_holiday_dates_come_from_the_calendar() -> None:
    assert holiday_date("Thanksgiving", 2026) == date(2026, 11, 26)
    assert holiday_date("mother's day", 2027) == date(2027, 5, 9)
    assert holiday_date("arbor week", 2027) is None

"""set_timer and set_reminder: stored as ``reminder`` records and handed to the scheduler, which
appends an event to the task that set them when they are due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, TypedDict

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.builtins._owner import record_owner
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolContext, ToolOutput
from hivemesh.tool.ports import Reminder

REMINDER_KIND = "reminder"
MAX_TIMER_S = 7 * 24 * 3600.0
# A due time this close to now is not "in the past": clocks and planning take a moment.
_PAST_TOLERANCE = timedelta(seconds=5)


class ReminderResult(TypedDict):
    reminder_id: str
    kind: Literal["timer", "reminder"]
    text: str
    due: str


async def _store_and_schedule(context: ToolContext, reminder: Reminder) -> None:
    await context.deps.records.put(
        reminder.owner, REMINDER_KIND, reminder.reminder_id, reminder.record_value(), expected_version=0
    )
    await context.deps.scheduler.schedule(reminder)


def _reminder_id(context: ToolContext) -> str:
    # The same idempotency key names the same reminder, so a replay on another replica cannot fork it.
    call = context.call
    if call.idempotency_key:
        seed = f"{call.owner.tenant_id}/{call.owner.user_id}/{call.idempotency_key}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
    return str(uuid.uuid4())


def describe_duration(seconds: float) -> str:
    """ "5 minutes", "1 hour 30 minutes", "45 seconds", "1.5 seconds"."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g} seconds"
    whole = round(seconds)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {unit}" + ("" if count == 1 else "s"))
    return " ".join(parts) or "0 seconds"


@tool(
    name="set_timer",
    result=ReminderResult,
    side_effects=True,
    timeout_s=5.0,
    serves=Serves(
        "set_timer",
        {"seconds": Fill("duration", question="How long should the timer run?"), "label": Fill("label")},
    ),
)
async def set_timer(
    context: ToolContext,
    seconds: Annotated[float, Arg(exclusive_minimum=0, maximum=MAX_TIMER_S)],
    label: Annotated[str, Arg(max_length=200)] = "",
) -> ToolOutput:
    """Start a timer; when it ends an event is appended to the task that set it.

    Args:
        seconds: How long the timer runs, at most 7 days.
        label: What the timer is for, e.g. "tea".
    """
    due = context.deps.clock().astimezone(UTC) + timedelta(seconds=seconds)
    text = label.strip() or "Timer"
    reminder = Reminder(
        _reminder_id(context), "timer", text, due, context.call.task_id, record_owner(context)
    )
    await _store_and_schedule(context, reminder)
    suffix = f": {label.strip()}" if label.strip() else ""
    return ToolOutput(_result(reminder), f"Timer set for {describe_duration(seconds)}{suffix}")


@tool(
    name="set_reminder",
    result=ReminderResult,
    side_effects=True,
    timeout_s=5.0,
    serves=Serves(
        "set_reminder",
        {
            "text": Fill("reminder_text", question="What should I remind you about?"),
            "due": Fill("due", question="When should I remind you?"),
        },
    ),
)
async def set_reminder(
    context: ToolContext,
    text: Annotated[str, Arg(min_length=1, max_length=500)],
    due: Annotated[str, Arg(format="date-time", min_length=10, max_length=64)],
) -> ToolOutput:
    """Remind the user of something at a given time.

    Args:
        text: What to remind the user of.
        due: When, as RFC 3339 with a UTC offset, e.g. "2026-11-26T09:00:00Z".
    """
    when = _parse_due(due)
    if when < context.deps.clock() - _PAST_TOLERANCE:
        raise InvalidArgument.field("arguments.due", "is in the past", reason="REMINDER_IN_PAST")
    reminder = Reminder(
        _reminder_id(context), "reminder", text.strip(), when, context.call.task_id, record_owner(context)
    )
    await _store_and_schedule(context, reminder)
    # Shown in the user's time zone: "at 5pm" reads back as 17:00, not as the hour in UTC.
    shown = when.astimezone(context.zone)
    return ToolOutput(
        _result(reminder), f"Reminder set for {shown:%Y-%m-%d %H:%M} {context.zone.key}: {reminder.text}"
    )


def _parse_due(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument.field(
            "arguments.due", f"{text!r} is not an RFC 3339 date-time", reason="INVALID_DATE_TIME"
        ) from None
    if when.tzinfo is None:
        raise InvalidArgument.field(
            "arguments.due", "needs a UTC offset (Z or +01:00)", reason="INVALID_DATE_TIME"
        )
    return when


def _result(reminder: Reminder) -> dict[str, str]:
    return {
        "reminder_id": reminder.reminder_id,
        "kind": reminder.kind,
        "text": reminder.text,
        "due": reminder.due.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }

"""The reminder scheduler used until the task queue's delivery is wired in: it only logs, so a timer
set on a service without a scheduler is visible in the logs instead of silently lost."""

from __future__ import annotations

import logging

from hivemesh.tool.ports import Reminder

_log = logging.getLogger(__name__)


class LoggingScheduler:
    async def schedule(self, reminder: Reminder) -> None:
        _log.warning(
            "no reminder scheduler is configured; %s %s for task %s due %s is stored but not delivered",
            reminder.kind,
            reminder.reminder_id,
            reminder.task_id or "(none)",
            reminder.due.isoformat(),
        )

"""Where timers and reminders go. ``TaskReminderScheduler`` hands them to the task system for
delivery; ``LoggingScheduler`` (for a tool service built without one) only logs, so a timer set
there is visible in the logs instead of silently lost."""

from __future__ import annotations

import logging
from dataclasses import replace

from hivemesh.mesh.config import Settings
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import shared_task_system
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


class TaskReminderScheduler:
    """Hands reminders to the task system, whose dispatcher (in the planner) appends a notice to the
    task that set them when they are due. A reminder set outside any task has nowhere to go and is
    only stored (as its memory record) and logged."""

    def __init__(self, settings: Settings, config: TaskConfig) -> None:
        # The tool service only writes reminders: no sweep of the queue from here.
        self._tasks = shared_task_system(settings, replace(config, sweep_interval_s=0))

    async def start(self) -> None:
        await self._tasks.start()

    async def stop(self, grace_s: float) -> None:
        await self._tasks.stop(grace_s)

    async def schedule(self, reminder: Reminder) -> None:
        if not reminder.task_id:
            _log.warning(
                "%s %s was set outside a task; it is stored but has no task to notify",
                reminder.kind,
                reminder.reminder_id,
            )
            return
        await self._tasks.reminders.schedule(
            reminder.reminder_id,
            task_id=reminder.task_id,
            tenant_id=reminder.owner.tenant_id,
            kind=reminder.kind,
            text=reminder.text,
            due=reminder.due.timestamp(),
        )

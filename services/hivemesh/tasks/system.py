"""Opens the task log and queue chosen by configuration, as one component with a lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.mesh.config import Settings
from hivemesh.mesh.sql import make_engine, sqlite_url
from hivemesh.tasks.log import TaskLog
from hivemesh.tasks.notifier import InProcessNotifier, Notifier
from hivemesh.tasks.projection import ends_watch, is_terminal
from hivemesh.tasks.queue import SqlTaskQueue, TaskQueue

# How long a watcher or an idle worker sleeps before looking again when no wake-up arrives
# (another process may have written: the embedded mesh run as separate processes shares one file).
POLL_INTERVAL_S = 0.02


class TaskSystem:
    """The task log, the queue and the wake-ups, opened on start and closed on stop."""

    def __init__(self, settings: Settings) -> None:
        url = settings.database_url or sqlite_url(settings.data_dir / "tasks.db")
        self.engine = make_engine(url)
        self.notifier: Notifier = InProcessNotifier()
        self.log = TaskLog(self.engine, self.notifier)
        self.queue: TaskQueue = SqlTaskQueue(self.engine, self.notifier)

    async def start(self) -> None:
        await self.log.migrate()

    async def stop(self, grace_s: float) -> None:
        await self.engine.dispose()

    async def _still_paused(self, task_id: str, sequence: int) -> bool:
        # A replayed question that has since been answered is not the end of the stream.
        task = await self.log.get(task_id)
        return task is None or is_terminal(task.state) or task.last_sequence == sequence

    async def follow(self, task_id: str, after_sequence: int) -> AsyncIterator[TaskEvent]:
        """Replay the log after ``after_sequence``, then follow new events until the task ends or
        waits for input. Every event is read back from the log, so the switch from replay to live
        has no gap and no duplicate."""
        last = after_sequence
        while True:
            batch = await self.log.read(task_id, last)
            for event in batch:
                last = event.sequence
                yield event
                if ends_watch(event) and await self._still_paused(task_id, event.sequence):
                    return
            if not batch:
                task = await self.log.get(task_id)
                if task is None or (is_terminal(task.state) and last >= task.last_sequence):
                    return
                await self.notifier.wait(task_id, POLL_INTERVAL_S)

"""Events held in memory for watchers: handed out only where they continue what a watcher has
seen, bounded in tasks and in events per task, robust to duplicates and to messages out of order."""

from __future__ import annotations

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.tasks.log import RecentEvents


def _event(task_id: str, sequence: int) -> TaskEvent:
    return TaskEvent(task_id=task_id, sequence=sequence)


def _sequences(events: list[TaskEvent]) -> list[int]:
    return [e.sequence for e in events]


def test_only_what_follows_on_without_a_gap() -> None:
    recent = RecentEvents()
    for n in (1, 2, 3, 4):
        recent.add(_event("t", n))
    assert _sequences(recent.after("t", 0)) == [1, 2, 3, 4]
    assert _sequences(recent.after("t", 2)) == [3, 4]
    assert recent.after("t", 4) == []
    assert recent.after("other", 0) == []


def test_a_gap_drops_what_came_before_it_and_is_never_bridged() -> None:
    recent = RecentEvents()
    recent.add(_event("t", 1))
    recent.add(_event("t", 2))
    recent.add(_event("t", 5))  # 3 and 4 were written elsewhere and not heard here
    assert recent.after("t", 2) == []  # the watcher must read 3 and 4 from the log
    assert _sequences(recent.after("t", 4)) == [5]


def test_duplicates_and_late_arrivals_change_nothing() -> None:
    recent = RecentEvents()
    for n in (1, 2, 3):
        recent.add(_event("t", n))
    recent.add(_event("t", 2))  # an own event heard back, or a late message
    recent.add(_event("t", 3))
    assert _sequences(recent.after("t", 0)) == [1, 2, 3]


def test_bounded_in_tasks_and_in_events_per_task() -> None:
    recent = RecentEvents(max_tasks=3, per_task=4)
    for n in range(1, 11):
        recent.add(_event("long", n))
    assert _sequences(recent.after("long", 6)) == [7, 8, 9, 10]
    assert recent.after("long", 0) == []  # 1 to 6 are no longer held: read from the log
    for name in ("a", "b", "c"):
        recent.add(_event(name, 1))
    assert recent.after("long", 6) == []  # the least recently written task went first
    assert _sequences(recent.after("c", 0)) == [1]

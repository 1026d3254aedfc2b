"""The mix of tasks: requests from the agent benchmark's first cases (not its everyday wording), each
judged as that benchmark judges it.

Tasks take turns across eight kinds (calculator, units, dates, lists, remember, recall, compound,
out of scope), so each is an eighth of the load whatever the number of cases per kind. Every task
starts a new conversation as a new user, except a recall: it asks, in a new session, one of the
users told a fact before the measurements (``facts_to_tell``) for it. Cases whose answers are random
(dice), that need a follow-up answer, or that start timers and reminders (which fire later, in the
middle of other measurements) are left out.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from dataclasses import dataclass

from benchmarks.agent.cases import build
from hivemesh.evaluation.cases import Turn, judge
from hivemesh.loadgen import Request, Workload

KINDS = ("calculator", "unit_conversion", "dates", "lists", "remember", "recall", "compound", "out_of_scope")


@dataclass(frozen=True)
class Fact:
    """A fact one user is told before the measurements and asked for during them."""

    user_id: str
    tell: Turn
    ask: Turn


def _schedules_something(turn: Turn) -> bool:
    text = turn.text.lower()
    return "timer" in text or "remind" in text


@dataclass(frozen=True)
class _Item:
    turn: Turn
    # The user who must ask (a recall); None: a new user for each task.
    user_id: str | None = None


class Mix:
    """``mix.request(i)`` is the i-th task of a run; ``mix.facts`` must be told before recalls."""

    def __init__(self, *, run: str | None = None) -> None:
        self.run = run or uuid.uuid4().hex[:8]
        # The cases written first for the benchmark: the everyday wording added later holds requests
        # the agent does not answer yet, which would count as failed tasks here.
        cases = build(everyday=False)
        items: dict[str, list[_Item]] = {kind: [] for kind in KINDS}
        memory = [case for case in cases if case.category == "memory"]
        for case in cases:
            # A list case's later turns depend on its first one; the first stands alone.
            turn = case.turns[0]
            wanted = case.category in items and not case.setup
            if wanted and not turn.question and not _schedules_something(turn):
                items[case.category].append(_Item(turn))
        self.facts = [
            Fact(f"tp-{self.run}-fact-{n}", case.setup[0], case.turns[0]) for n, case in enumerate(memory)
        ]
        items["remember"] = [_Item(fact.tell) for fact in self.facts]
        items["recall"] = [_Item(fact.ask, fact.user_id) for fact in self.facts]
        self._items = items
        self._numbers = itertools.count()

    def request(self, number: int) -> Request:
        kind = KINDS[number % len(KINDS)]
        items = self._items[kind]
        item = items[(number // len(KINDS)) % len(items)]
        return Request(
            item.turn.text,
            user_id=item.user_id or f"tp-{self.run}-{number}",
            session_id=f"s{number}",
            check=functools.partial(judge, item.turn),
        )

    def workload(self) -> Workload:
        """The tasks of one measurement. Tasks are numbered across every measurement of the mix,
        so no new user or session of one appears in another."""
        return lambda _number: self.request(next(self._numbers))

    def tell(self, fact: Fact) -> Request:
        """The request that tells ``fact``'s user the fact (before any recall)."""
        return Request(
            fact.tell.text, user_id=fact.user_id, session_id="told", check=functools.partial(judge, fact.tell)
        )

    def sizes(self) -> dict[str, int]:
        return {kind: len(items) for kind, items in self._items.items()}

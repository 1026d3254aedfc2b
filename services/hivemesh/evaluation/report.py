"""What one run of a suite measured, as figures a gate can compare and as a JSON document.

The document ``hivemesh eval --json`` prints (and ``--report-out`` writes)::

    {"format": "hivemesh.eval.report/v1",
     "target": <report>, "baseline": <report> | null, "gate": <verdict> | null}

and a report is::

    {"address": "host:port", "suite": "default", "suite_digest": "<sha256>",
     "started_at": "2026-01-01T12:00:00+00:00", "seconds": 4.2, "concurrency": 4,
     "cases": 204, "correct": 204, "wrong": 0, "errors": 0, "accuracy": 1.0, "error_rate": 0.0,
     "throttled": 0,
     "latency_ms": {"turns": 236, "p50": 31.5, "p95": 80.2, "p99": 140.9, "max": 160.0},
     "categories": {"calculator": {"cases": 37, "correct": 37, "wrong": 0, "errors": 0,
                                   "accuracy": 1.0}, ...},
     "failures": [{"case": "lists-3", "category": "lists", "verdict": "wrong",
                   "detail": "'what is on my shopping list' -> 'Your shopping list: apples'"}]}

A saved document is a baseline for a later run (``--baseline-report``): its ``target`` is the
report compared with.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hivemesh.evaluation.cases import Suite
from hivemesh.evaluation.runner import CaseResult, Verdict
from hivemesh.loadgen import percentile

REPORT_FORMAT = "hivemesh.eval.report/v1"


class ReportError(ValueError):
    """A baseline report that cannot be read."""


@dataclass(frozen=True)
class CategoryFigures:
    cases: int
    correct: int
    wrong: int
    errors: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0


@dataclass(frozen=True)
class Latency:
    """Milliseconds per turn (one task, its follow-up answer included), over every turn run."""

    turns: int
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class Failure:
    case: str
    category: str
    verdict: str
    detail: str


@dataclass(frozen=True)
class Report:
    address: str
    suite: str
    suite_digest: str
    started_at: str
    seconds: float
    concurrency: int
    categories: Mapping[str, CategoryFigures]
    latency_ms: Latency
    throttled: int = 0
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def cases(self) -> int:
        return sum(c.cases for c in self.categories.values())

    @property
    def correct(self) -> int:
        return sum(c.correct for c in self.categories.values())

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.categories.values())

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.cases if self.cases else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "suite": self.suite,
            "suite_digest": self.suite_digest,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "concurrency": self.concurrency,
            "cases": self.cases,
            "correct": self.correct,
            "wrong": sum(c.wrong for c in self.categories.values()),
            "errors": self.errors,
            "accuracy": round(self.accuracy, 6),
            "error_rate": round(self.error_rate, 6),
            "throttled": self.throttled,
            "latency_ms": asdict(self.latency_ms),
            "categories": {
                name: {**asdict(figures), "accuracy": round(figures.accuracy, 6)}
                for name, figures in sorted(self.categories.items())
            },
            "failures": [asdict(f) for f in self.failures],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        try:
            latency = data["latency_ms"]
            return cls(
                address=str(data["address"]),
                suite=str(data["suite"]),
                suite_digest=str(data["suite_digest"]),
                started_at=str(data["started_at"]),
                seconds=float(data["seconds"]),
                concurrency=int(data["concurrency"]),
                categories={
                    str(name): CategoryFigures(
                        int(c["cases"]), int(c["correct"]), int(c["wrong"]), int(c["errors"])
                    )
                    for name, c in data["categories"].items()
                },
                latency_ms=Latency(
                    int(latency["turns"]),
                    float(latency["p50"]),
                    float(latency["p95"]),
                    float(latency["p99"]),
                    float(latency["max"]),
                ),
                throttled=int(data.get("throttled", 0)),
                failures=tuple(
                    Failure(str(f["case"]), str(f["category"]), str(f["verdict"]), str(f["detail"]))
                    for f in data.get("failures", [])
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"not a hivemesh eval report ({type(exc).__name__}: {exc})") from exc


def summarise(
    results: Sequence[CaseResult],
    suite: Suite,
    *,
    address: str,
    started_at: dt.datetime,
    seconds: float,
    concurrency: int,
) -> Report:
    tallies: dict[str, list[int]] = {}
    for result in results:
        tally = tallies.setdefault(result.case.category, [0, 0, 0, 0])
        tally[0] += 1
        tally[1 + [Verdict.CORRECT, Verdict.WRONG, Verdict.ERROR].index(result.verdict)] += 1
    latencies = sorted(s * 1000.0 for r in results for s in r.latencies_s)
    return Report(
        address=address,
        suite=suite.name,
        suite_digest=suite.digest,
        started_at=started_at.isoformat(timespec="seconds"),
        seconds=seconds,
        concurrency=concurrency,
        categories={name: CategoryFigures(*t) for name, t in sorted(tallies.items())},
        latency_ms=Latency(
            turns=len(latencies),
            p50=_ms(percentile(latencies, 0.50)),
            p95=_ms(percentile(latencies, 0.95)),
            p99=_ms(percentile(latencies, 0.99)),
            max=_ms(latencies[-1] if latencies else 0.0),
        ),
        throttled=sum(r.throttled for r in results),
        failures=tuple(
            Failure(r.case.id, r.case.category, r.verdict.value, r.detail)
            for r in results
            if r.verdict != Verdict.CORRECT
        ),
    )


def _ms(value: float) -> float:
    return 0.0 if math.isnan(value) else round(value, 1)  # no turns at all reads as 0


def read_baseline(text: str, name: str) -> Report:
    """The report to compare with from a saved ``hivemesh eval --json`` document (its target)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{name}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise ReportError(f'{name}: expected a document with "format": "{REPORT_FORMAT}"')
    target = document.get("target")
    if not isinstance(target, dict):
        raise ReportError(f"{name}: the document holds no 'target' report")
    try:
        return Report.from_dict(target)
    except ReportError as exc:
        raise ReportError(f"{name}: {exc}") from exc

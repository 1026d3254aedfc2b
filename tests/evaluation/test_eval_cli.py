"""``hivemesh eval`` against embedded meshes: the shipped suite against the checked-in baseline (what
CI gates on), and a worse target failing the gate with the category named.

tests/evaluation/baseline.json is refreshed with ``python -m benchmarks.agent --report-out
tests/evaluation/baseline.json`` (docs/eval.md) when cases or expected answers change on purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivemesh.evaluation import cases
from hivemesh.evaluation.cli import EXIT_PASSED, EXIT_REGRESSED, EXIT_UNAVAILABLE, main
from tests.language.nlu_data import write_router_without
from tests.support import RunningMesh, make_settings, start_mesh

pytestmark = pytest.mark.slow

BASELINE = Path(__file__).resolve().parent / "baseline.json"


async def _eval(*argv: str) -> int:
    # The command runs its own event loop, as it does from a shell; the meshes stay on this one.
    return await asyncio.to_thread(main, list(argv))


def _small_suite(path: Path, categories: set[str]) -> Path:
    chosen = [c for c in cases.load("default").cases if c.category in categories]
    path.write_text(cases.dumps(chosen), encoding="utf-8")
    return path


@pytest.fixture
async def healthy(tmp_path: Path) -> AsyncIterator[RunningMesh]:
    mesh = await start_mesh(make_settings(tmp_path / "healthy"))
    try:
        yield mesh
    finally:
        await mesh.stop()


async def test_the_shipped_suite_passes_against_the_checked_in_baseline(
    healthy: RunningMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    # Latency measured on another machine does not compare; accuracy and errors do.
    code = await _eval(
        "--cases", "default", "--target", healthy.address("gateway"),
        "--baseline-report", str(BASELINE), "--p99-factor", "0", "--json",
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["gate"]["regressions"] == []
    assert code == EXIT_PASSED
    assert result["gate"]["same_suite"], "the baseline ran another suite: refresh it (docs/eval.md)"
    assert result["target"]["cases"] == len(cases.load("default").cases)


async def test_a_worse_router_fails_the_gate_naming_the_category(
    healthy: RunningMesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router = await asyncio.to_thread(write_router_without, {"spell"}, tmp_path / "router")
    with pytest.MonkeyPatch.context() as env:  # the language service reads its router as it is built
        env.setenv("HIVEMESH_NLU_MODEL", str(router))
        worse = await start_mesh(make_settings(tmp_path / "worse"))
    suite = _small_suite(tmp_path / "suite.json", {"spelling", "greeting", "dice"})
    try:
        code = await _eval(
            "--cases", str(suite), "--target", worse.address("gateway"),
            "--baseline", healthy.address("gateway"), "--p99-factor", "0",
        )  # fmt: skip
    finally:
        await worse.stop()
    out = capsys.readouterr().out
    assert code == EXIT_REGRESSED
    assert "REGRESSED (exit 5):\n  spelling: accuracy 100.0% -> " in out
    assert "greeting: accuracy" not in out


async def test_a_saved_baseline_that_was_faster_and_ran_more_fails_the_gate(
    healthy: RunningMesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = _small_suite(tmp_path / "suite.json", {"greeting"})
    saved = tmp_path / "saved.json"
    first = await _eval(
        "--cases", str(suite), "--target", healthy.address("gateway"), "--report-out", str(saved)
    )
    assert first == EXIT_PASSED
    document = json.loads(saved.read_text())
    document["target"]["latency_ms"]["p99"] = 0.01
    document["target"]["categories"]["spelling"] = {"cases": 2, "correct": 2, "wrong": 0, "errors": 0}
    saved.write_text(json.dumps(document))
    capsys.readouterr()
    code = await _eval(
        "--cases",
        str(suite),
        "--target",
        healthy.address("gateway"),
        "--baseline-report",
        str(saved),
        "--json",
    )
    result = json.loads(capsys.readouterr().out)
    assert code == EXIT_REGRESSED
    assert {(r["check"], r["category"]) for r in result["gate"]["regressions"]} == {
        ("p99_latency", ""),
        ("missing_category", "spelling"),
    }


async def test_an_unreachable_target_exits_4(unused_tcp_port: int) -> None:
    code = await _eval(
        "--cases", "default", "--target", f"127.0.0.1:{unused_tcp_port}", "--connect-timeout", "0.5"
    )
    assert code == EXIT_UNAVAILABLE

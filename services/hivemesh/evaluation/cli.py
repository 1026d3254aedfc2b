"""``hivemesh eval``: run a case suite against a mesh, report accuracy per category, latency and
errors, and compare with a baseline (another running mesh, or a report saved earlier).

Exit status: 0 when the gate passed (or there was nothing to compare with), 5 when the target
regressed against the baseline, 2 for bad arguments, an unreadable suite or baseline report, 4 when
the target or the baseline mesh cannot be reached, 1 when a mesh refused the eval's first call
(for example its credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc

from hivemesh.client import HivemeshClient, credentials_from_env
from hivemesh.common.v1.task_pb2 import CanarySide
from hivemesh.evaluation import cases
from hivemesh.evaluation.gate import GateResult, Thresholds, compare
from hivemesh.evaluation.report import REPORT_FORMAT, Report, ReportError, read_baseline, summarise
from hivemesh.evaluation.runner import SuiteRunner
from hivemesh.mesh.config import ConfigError, Settings, TlsConfig
from hivemesh.mesh.status import details_of

# --side: the value of TaskOptions.side each case's tasks carry.
SIDES = {
    "any": CanarySide.CANARY_SIDE_UNSPECIFIED,
    "stable": CanarySide.CANARY_SIDE_STABLE,
    "canary": CanarySide.CANARY_SIDE_CANARY,
}

EXIT_PASSED = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4
EXIT_REGRESSED = 5


class _Unreachable(Exception):
    pass


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, got {text}")
    return value


def _factor(text: str) -> float:
    value = float(text)
    if value != 0 and not 1.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"0 (off) or a factor of at least 1, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hivemesh eval",
        description="Run a case suite through a mesh's gateway and compare it with a baseline.",
        epilog="Exit status: 0 passed (or no baseline), 5 regressed, 2 bad arguments or files, "
        "4 a mesh cannot be reached, 1 a mesh refused the first call. See docs/eval.md.",
    )
    p.add_argument(
        "--cases", required=True, help="suite file (JSON, see docs/eval.md), or 'default': the shipped suite"
    )
    p.add_argument("--target", required=True, help="gateway host:port of the mesh under test")
    baseline = p.add_mutually_exclusive_group()
    baseline.add_argument("--baseline", help="gateway host:port of a mesh to run the same suite against")
    baseline.add_argument(
        "--baseline-report", type=Path, help="a document saved earlier with --json or --report-out"
    )
    p.add_argument(
        "--side",
        choices=tuple(SIDES),
        default="any",
        help="run every case on this side of the canaries of language and tool (inside the mesh; "
        "'any': the side each session lands on) (default %(default)s)",
    )
    p.add_argument(
        "--baseline-side",
        choices=tuple(SIDES),
        default="any",
        help="the same for the --baseline mesh (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON document instead of a table")
    p.add_argument("--report-out", type=Path, help="also write the JSON document to this file")
    p.add_argument(
        "--margin",
        type=_share,
        default=Thresholds.margin,
        help="largest drop of a category's accuracy that passes, as a share (default %(default)s)",
    )
    p.add_argument(
        "--p99-factor",
        type=_factor,
        default=Thresholds.p99_factor,
        help="largest p99 latency that passes, in times the baseline's; 0: not checked (default %(default)s)",
    )
    p.add_argument("--concurrency", type=_count, default=4, help="cases run at once (default %(default)s)")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds one turn may take (default %(default)s)"
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each mesh to accept a connection (default %(default)s)",
    )
    p.add_argument(
        "--show-failures", type=int, default=10, help="failed cases listed in the table (default %(default)s)"
    )
    return p


async def _measure(
    address: str, suite: cases.Suite, args: argparse.Namespace, tls: TlsConfig | None, side: str = "any"
) -> Report:
    async with HivemeshClient(
        address, metadata=credentials_from_env(), timeout_s=args.timeout, tls=tls
    ) as client:
        try:
            await client.ready(args.connect_timeout)
        except TimeoutError as exc:
            raise _Unreachable(f"{address}: no connection within {args.connect_timeout:g}s") from exc
        # One cheap authenticated call, so a refusal (credentials, tenant) stops the eval at once
        # instead of showing as every case's error.
        await client.list(page_size=1)
        started_at = dt.datetime.now(dt.UTC)
        began = time.perf_counter()
        results = await SuiteRunner(client, task_timeout_s=args.timeout, side=SIDES[side]).run(
            suite, concurrency=args.concurrency
        )
        return summarise(
            results,
            suite,
            address=address if side == "any" else f"{address} ({side} side)",
            started_at=started_at,
            seconds=time.perf_counter() - began,
            concurrency=args.concurrency,
        )


async def _evaluate(
    suite: cases.Suite, args: argparse.Namespace, saved: Report | None, tls: TlsConfig | None
) -> tuple[Report, Report | None]:
    if args.baseline is None:
        return await _measure(args.target, suite, args, tls, args.side), saved
    # Side by side, so both meshes are measured under the same conditions.
    target, baseline = await asyncio.gather(
        _measure(args.target, suite, args, tls, args.side),
        _measure(args.baseline, suite, args, tls, args.baseline_side),
    )
    return target, baseline


def document(target: Report, baseline: Report | None, gate: GateResult | None) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "target": target.as_dict(),
        "baseline": None if baseline is None else baseline.as_dict(),
        "gate": None if gate is None else gate.as_dict(),
    }


def _figures(report: Report, name: str) -> str:
    c = report.categories.get(name)
    if c is None:
        return "-"
    return f"{c.correct:>4}/{c.cases:<4} {c.accuracy:>7.1%}"


def write_table(
    out: TextIO, target: Report, baseline: Report | None, gate: GateResult | None, show_failures: int
) -> None:
    suite = f"{target.suite} ({target.cases} cases, sha256 {target.suite_digest[:12]})"
    line = f"suite {suite} against {target.address}"
    if baseline is not None:
        same = "same suite" if gate is not None and gate.same_suite else "A DIFFERENT SUITE"
        line += f"; baseline {baseline.address} ({same}, {baseline.started_at})"
    print(line, file=out)
    names = sorted(set(target.categories) | set(baseline.categories if baseline else ()))
    header = f"{'category':<18}{'target':<22}"
    if baseline is not None:
        header += f"{'baseline':<22}{'change':>8}"
    print(header.rstrip(), file=out)
    for name in names:
        row = f"{name:<18}{_figures(target, name):<22}"
        if baseline is not None:
            row += f"{_figures(baseline, name):<22}"
            if name in target.categories and name in baseline.categories:
                change = target.categories[name].accuracy - baseline.categories[name].accuracy
                row += f"{change * 100:>+8.1f}"
        print(row.rstrip(), file=out)

    def overall(r: Report) -> str:
        return f"{r.correct:>4}/{r.cases:<4} {r.accuracy:>7.1%}"

    def latency(r: Report) -> str:
        return f"{r.latency_ms.p50:.0f} / {r.latency_ms.p95:.0f} / {r.latency_ms.p99:.0f} ms"

    def errors(r: Report) -> str:
        return f"{r.errors} ({r.error_rate:.1%})"

    rows = [
        ("overall", overall),
        ("errors", errors),
        ("p50 / p95 / p99", latency),
        ("throttled calls", lambda r: str(r.throttled)),
    ]
    for label, show in rows:
        row = f"{label:<18}{show(target):<22}"
        if baseline is not None:
            row += show(baseline)
        print(row.rstrip(), file=out)
    if target.failures and show_failures > 0:
        shown = target.failures[:show_failures]
        print(f"\nfailed cases on the target ({len(shown)} of {len(target.failures)}):", file=out)
        for failure in shown:
            print(f"  {failure.case} ({failure.verdict}): {failure.detail}", file=out)
    if gate is None:
        print("\nno baseline: nothing compared", file=out)
    elif gate.passed:
        limit = (
            f"p99 within {gate.thresholds.p99_factor:g}x" if gate.thresholds.p99_factor else "p99 not checked"
        )
        print(
            f"\nPASSED: no category fell more than {gate.thresholds.margin * 100:.1f} points, {limit}, "
            "errors did not rise",
            file=out,
        )
    else:
        print(f"\nREGRESSED (exit {EXIT_REGRESSED}):", file=out)
        for regression in gate.regressions:
            print(f"  {regression.message}", file=out)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        suite = cases.load(args.cases)
        saved = None
        if args.baseline_report is not None:
            saved = read_baseline(args.baseline_report.read_text(encoding="utf-8"), str(args.baseline_report))
        tls = Settings.from_env().tls
    except (cases.SuiteError, ReportError, ConfigError) as exc:
        print(f"hivemesh eval: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"hivemesh eval: {args.baseline_report}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target, baseline = asyncio.run(_evaluate(suite, args, saved, tls))
    except _Unreachable as exc:
        print(f"hivemesh eval: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except grpc.aio.AioRpcError as exc:
        details = details_of(exc)
        reason = f" ({details.reason})" if details.reason else ""
        print(f"hivemesh eval: {details.code.name}{reason}: {details.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE if details.code == grpc.StatusCode.UNAVAILABLE else EXIT_REFUSED
    gate = None if baseline is None else compare(target, baseline, Thresholds(args.margin, args.p99_factor))
    result = document(target, baseline, gate)
    if args.report_out is not None:
        args.report_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        write_table(sys.stdout, target, baseline, gate, args.show_failures)
    return EXIT_REGRESSED if gate is not None and not gate.passed else EXIT_PASSED

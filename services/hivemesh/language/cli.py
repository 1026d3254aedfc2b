"""``hivemesh nlu``: train an intent router from a data file, evaluate a trained one, and report
how a shadow router compares with the live one on real traffic.

hivemesh nlu train --data FILE --out DIR [--encoder lexical|minilm|openai] [--hold-out-development]
hivemesh nlu eval --data FILE --model DIR [--split test|val|development]
hivemesh nlu shadow-report --metrics URL [--metrics URL ...] [--json] [--min-agreement SHARE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from hivemesh.language.nlu.dataset import (
    DEVELOPMENT_SEED,
    DatasetError,
    Example,
    development_split,
    file_digest,
    load_splits,
    require,
    stratified_holdout,
)
from hivemesh.language.nlu.evaluation import score
from hivemesh.language.nlu.factory import ENCODERS, encoder_loader, sentence_encoder
from hivemesh.language.nlu.minilm import FineTuneConfig
from hivemesh.language.nlu.router import Router
from hivemesh.language.nlu.training import DEFAULT_OOS_PRIOR, TrainOptions, fit_router
from hivemesh.language.shadow import Tallies, combined, read_tallies
from hivemesh.mesh.config import ConfigError

HOLDOUT_FRACTION = 0.2
# The split name ``eval --split`` gives the development split carved out of train and val.
DEVELOPMENT = "development"
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4
# shadow-report --min-agreement: the candidate agreed less often (the eval gate's code for "worse").
EXIT_BELOW = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivemesh nlu", description="Train and evaluate the intent router.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="fit a router on the train and val splits; threshold from cross-fitted val scores"
    )
    train.add_argument(
        "--data", type=Path, required=True, help='JSON {"train": [[text, intent]], "val": ...}'
    )
    train.add_argument("--out", type=Path, required=True, help="directory to write the router to")
    train.add_argument("--encoder", choices=ENCODERS, default="lexical")
    train.add_argument(
        "--oos-prior",
        type=float,
        default=DEFAULT_OOS_PRIOR,
        help="share of out-of-scope traffic the threshold is tuned for (default %(default)s)",
    )
    train.add_argument(
        "--hold-out-development",
        action="store_true",
        help="leave out the development split (see docs/language.md) so that eval --split development "
        "scores text the router never saw",
    )
    train.add_argument(
        "--no-fine-tune",
        action="store_true",
        help="minilm: use the shipped encoder weights as they are (default: fine-tune on the train split)",
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=float,
        default=FineTuneConfig().epochs,
        help="minilm: passes over the train split (default %(default)s)",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=FineTuneConfig().threads,
        help="minilm: torch threads while fine-tuning (default %(default)s)",
    )
    evaluate = commands.add_parser("eval", help="score a trained router on a split")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--model", type=Path, required=True, help="a directory written by train")
    evaluate.add_argument(
        "--split",
        help='split to score (default: "test" if present, else "val"); "development": the rows '
        "train --hold-out-development leaves out",
    )
    report = commands.add_parser(
        "shadow-report",
        help="agreement of the shadow router (HIVEMESH_NLU_SHADOW_MODEL) with the live one",
        description="Reads the shadow counters from the language service's Prometheus endpoint (summed "
        "over every --metrics given, one per replica) and prints the agreement and the disagreements "
        "by intent pair; the disagreeing texts are sampled in the service's log.",
    )
    report.add_argument(
        "--metrics",
        action="append",
        required=True,
        help="metrics endpoint of a language process: http://host:9464/metrics or host:port (repeatable)",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    report.add_argument("--top", type=int, default=20, help="intent pairs shown (default %(default)s)")
    report.add_argument(
        "--min-agreement",
        type=float,
        help=f"exit {EXIT_BELOW} when the share of agreed requests is below this (0 to 1)",
    )
    return parser


def train(
    data: Path,
    out: Path,
    encoder_kind: str,
    oos_prior: float,
    *,
    hold_out_development: bool = False,
    fine_tune: FineTuneConfig | None = None,
) -> int:
    splits = load_splits(data)
    fit_split = require(splits, "train", data)
    provenance = {"data_sha256": file_digest(data)}
    if hold_out_development:
        carved = development_split(fit_split, splits.get("val") or [])
        fit_split, splits["val"] = carved.train, carved.val
        provenance["development_held_out"] = f"seed {DEVELOPMENT_SEED}, {len(carved.development)} rows"
    if splits.get("val"):
        calibration, calibration_name = splits["val"], "val"
    else:
        fit_split, calibration = stratified_holdout(fit_split, HOLDOUT_FRACTION)
        calibration_name = f"{HOLDOUT_FRACTION:.0%} of train held out"
    started = time.perf_counter()
    router = fit_router(
        [(e.text, e.intent) for e in fit_split],
        [(e.text, e.intent) for e in calibration],
        encoder_kind=encoder_kind,
        encoder=sentence_encoder(encoder_kind, os.environ),
        options=TrainOptions(oos_prior=oos_prior, fine_tune=fine_tune),
        info={**provenance, "calibration_split": calibration_name},
    )
    router.save(out)
    info = router.meta.info
    print(
        f"trained {len(router.intents)} intents on {len(fit_split)} + {len(calibration)} examples in "
        f"{time.perf_counter() - started:.1f}s; threshold {router.meta.threshold:.2f} "
        f"({info['threshold_rule']} on {calibration_name}); saved to {out}"
    )
    return 0


def _split(data: Path, name: str) -> list[Example]:
    splits = load_splits(data)
    if name == DEVELOPMENT:
        return development_split(require(splits, "train", data), splits.get("val") or []).development
    return require(splits, name, data)


def evaluate(data: Path, model: Path, split: str | None) -> int:
    name = split or ("test" if load_splits(data).get("test") else "val")
    examples = _split(data, name)
    router = Router.load(model, encoder_loader(os.environ))
    texts = [e.text for e in examples]
    started = time.perf_counter()
    predictions = router.predict(texts)
    batch_s = time.perf_counter() - started
    figures = score([e.intent for e in examples], predictions)
    # A lone request at a time, as an interactive caller sees it.
    sample = texts[: min(len(texts), 300)]
    latencies = []
    for text in sample:
        one = time.perf_counter()
        router.predict([text])
        latencies.append(time.perf_counter() - one)
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    same_file = router.meta.info.get("data_sha256") == file_digest(data)
    held_out = "development_held_out" in router.meta.info
    if same_file and (name in ("train", "val") or (name == DEVELOPMENT and not held_out)):
        print(
            f"note: the router was fitted on this file's rows of {name}, so its figures there are "
            "optimistic; evaluate on a split it has not seen (test, or development after "
            "train --hold-out-development)",
            file=sys.stderr,
        )
    print(f"split                {name} ({figures.in_scope_count} in scope, {figures.oos_count} oos)")
    print(f"encoder              {router.meta.encoder}; threshold {router.meta.threshold:.2f}")
    print(f"in-scope accuracy    {figures.in_scope_accuracy:.4f}")
    print(f"oos recall           {figures.oos_recall:.4f}")
    print(f"oos precision        {figures.oos_precision:.4f}")
    print(f"overall accuracy     {figures.overall_accuracy:.4f}")
    print(f"  at a 1000/5500 oos mix (CLINC150 test proportions): {figures.reweighted(1000 / 5500):.4f}")
    print(f"oos AUROC            {figures.oos_auroc:.4f}")
    print(f"latency, one text    p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(sample)} requests)")
    print(f"throughput, batched  {len(texts) / batch_s:.0f} texts/s ({len(texts)} texts in one call)")
    return 0


def _metrics_url(target: str) -> str:
    url = target if "://" in target else f"http://{target}"
    return url if url.rstrip("/").endswith("/metrics") else url.rstrip("/") + "/metrics"


def shadow_report(targets: Sequence[str], *, as_json: bool, top: int, min_agreement: float | None) -> int:
    parts: list[Tallies] = []
    for target in targets:
        url = _metrics_url(target)
        try:
            response = httpx.get(url, timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            print(f"hivemesh nlu shadow-report: {url}: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        tallies = read_tallies(response.text)
        if tallies is None:
            print(
                f"hivemesh nlu shadow-report: {url} exports no shadow counters "
                "(is HIVEMESH_NLU_SHADOW_MODEL set for that language service?)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        parts.append(tallies)
    total = combined(parts)
    pairs = sorted(total.disagreements.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        print(
            json.dumps(
                {
                    "agreement": total.agreement,
                    **total.outcomes,
                    "disagreements": [
                        {"live_intent": live, "candidate_intent": candidate, "requests": count}
                        for (live, candidate), count in pairs
                    ],
                },
                indent=2,
            )
        )
    else:
        compared = total.outcomes["agreed"] + total.outcomes["disagreed"]
        share = "n/a" if total.agreement is None else f"{total.agreement:.1%}"
        print(
            f"shadow router: {compared} requests compared, agreement {share} "
            f"({total.outcomes['agreed']} agreed, {total.outcomes['disagreed']} disagreed); "
            f"{total.outcomes['dropped']} dropped (queue full), {total.outcomes['failed']} failed"
        )
        if pairs:
            print("disagreements, live intent -> candidate intent:")
            for (live, candidate), count in pairs[:top]:
                print(f"  {count:>8}  {live} -> {candidate}")
            if len(pairs) > top:
                print(f"  ... and {len(pairs) - top} more pairs")
    if min_agreement is not None and (total.agreement is None or total.agreement < min_agreement):
        return EXIT_BELOW
    return 0


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        if args.command == "train":
            tuning = (
                None
                if args.no_fine_tune
                else FineTuneConfig(epochs=args.fine_tune_epochs, threads=args.threads)
            )
            return train(
                args.data,
                args.out,
                args.encoder,
                args.oos_prior,
                hold_out_development=args.hold_out_development,
                fine_tune=tuning,
            )
        if args.command == "shadow-report":
            return shadow_report(
                args.metrics, as_json=args.json, top=args.top, min_agreement=args.min_agreement
            )
        return evaluate(args.data, args.model, args.split)
    except (DatasetError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"hivemesh nlu: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

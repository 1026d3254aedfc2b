"""``python -m benchmarks.nlu [--encoder lexical|minilm ...]`` (default: both)

Two protocols, each reported beside the other (no reported example takes part in a choice that
scores it, nor in the router that scores it):

- **development split** (the estimate to use): ``development_split`` sets aside a seeded,
  stratified share of CLINC150 train + val (20 of every intent's 120 rows, 100 of the 200
  out-of-scope rows: 3,100 rows). A router is fitted as ``hivemesh nlu train --hold-out-development``
  fits one, on the rest: the minilm encoder fine-tuned on the rest of ``train``, the router on the
  rest of ``train`` with the rest of ``val`` as calibration split (threshold from the declared rule
  on cross-fitted calibration scores). It scores the development split, which nothing has seen.
- **val halves** (kept for comparison; ``val`` shaped this project's earlier choices, so these
  figures are optimistic): ``val`` is split in two stratified halves; each half is scored by a
  router fitted on ``train`` and the other half as calibration split; the predictions are pooled.
  The minilm encoder is the one fine-tuned above (it has seen no ``val`` row).

For minilm, the out-of-scope scores that use the embedding geometry are compared with the router's
pairwise score (``benchmarks/nlu/oos.py``): each score's threshold comes from the same rule on the
calibration rows, and all are reported on the development split; none is chosen there.

The fine-tuned encoder is kept under ``<repo>/.benchmarks/nlu/`` keyed by the data, the split seed
and the fine-tuning settings, with the time its training took (``--retune`` trains afresh). The
dataset is read from ``<repo>/../shared/data/clinc150/train_val.json`` (``--data`` overrides).
Serving figures come from ``hivemesh serve language`` in its own process, loaded from this one,
with the development protocol's router.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import grpc
import numpy as np

from benchmarks.nlu.oos import compare_out_of_scope_scores
from benchmarks.serving import served
from hivemesh.language.nlu.dataset import (
    DEVELOPMENT_SEED,
    DevelopmentSplit,
    Example,
    development_split,
    file_digest,
    load_splits,
    require,
    stratified_holdout,
)
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.evaluation import Scores, score
from hivemesh.language.nlu.factory import ENCODERS, sentence_encoder
from hivemesh.language.nlu.minilm import FineTuneConfig, MiniLmEncoder
from hivemesh.language.nlu.router import LayeredEncoder, Prediction, Router
from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.language.nlu.training import fit_router
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "clinc150" / "train_val.json"
CACHE = REPO / ".benchmarks" / "nlu"
TEST_MIX = 1000 / 5500


class _Memo:
    """The benchmark's encoder, remembering what it encoded: the fits share most texts."""

    def __init__(self, encoder: TextEncoder) -> None:
        self._encoder = encoder
        self._rows: dict[tuple[str, tuple[int, ...]], FloatArray] = {}

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dimensions(self) -> int:
        return self._encoder.dimensions

    @property
    def fine_tuned(self) -> bool:
        return isinstance(self._encoder, MiniLmEncoder) and self._encoder.fine_tuned

    def save_weights(self, directory: Path) -> None:
        assert isinstance(self._encoder, MiniLmEncoder)
        self._encoder.save_weights(directory)

    def weights_digest(self) -> str:
        assert isinstance(self._encoder, MiniLmEncoder)
        return self._encoder.weights_digest()

    def encode(self, texts: Sequence[str]) -> FloatArray:
        return self._cached(texts, (), self._encoder.encode)

    def layer_features(self, texts: Sequence[str], layers: Sequence[int]) -> FloatArray:
        assert isinstance(self._encoder, LayeredEncoder)
        encoder = self._encoder
        return self._cached(texts, tuple(layers), lambda missing: encoder.layer_features(missing, layers))

    def _cached(
        self, texts: Sequence[str], layers: tuple[int, ...], compute: Callable[[list[str]], FloatArray]
    ) -> FloatArray:
        missing = list(dict.fromkeys(t for t in texts if (t, layers) not in self._rows))
        if missing:
            for text, row in zip(missing, compute(missing), strict=True):
                self._rows[(text, layers)] = row
        return np.stack([self._rows[(t, layers)] for t in texts])


def pairs(examples: Sequence[Example]) -> list[tuple[str, str]]:
    return [(e.text, e.intent) for e in examples]


def tuned_minilm(data: Path, carved: DevelopmentSplit, config: FineTuneConfig, retune: bool) -> MiniLmEncoder:
    """MiniLM fine-tuned on the development protocol's train rows, from the cache or trained now."""
    key = hashlib.sha256(
        json.dumps(
            [file_digest(data), DEVELOPMENT_SEED, {**asdict(config), "threads": 0}], sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    directory = CACHE / f"minilm-tuned-{key}"
    report_file = directory / "fine_tune.json"
    if retune and directory.exists():
        shutil.rmtree(directory)
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        print(f"minilm: fine-tuned encoder from {directory} (trained earlier: {report['summary']})")
        return MiniLmEncoder(weights=directory)
    encoder = MiniLmEncoder()
    started_cpu = time.process_time()
    result = encoder.fine_tune([e.text for e in carved.train], [e.intent for e in carved.train], config)
    cpu_s = time.process_time() - started_cpu
    summary = (
        f"{result.steps} steps over {len(carved.train)} rows ({result.examples_seen} examples) in "
        f"{result.seconds:.0f}s wall, {cpu_s:.0f}s CPU, torch threads {result.threads}"
    )
    print(f"minilm: fine-tuned: {summary}; final loss {result.final_loss:.3f}")
    encoder.save_weights(directory)
    report_file.write_text(json.dumps({"summary": summary, "config": asdict(config)}, indent=2))
    return encoder


def val_halves(
    train: list[Example], val: list[Example], kind: str, encoder: TextEncoder | None
) -> tuple[Scores, list[float], float]:
    """Figures pooled over the two halves of ``val``, each scored by a router calibrated on the other."""
    first, second = stratified_holdout(val, 0.5, seed=1)
    position = {id(e): i for i, e in enumerate(val)}
    predictions: list[Prediction | None] = [None] * len(val)
    thresholds, fit_s = [], 0.0
    for reported, calibration in ((second, first), (first, second)):
        started = time.perf_counter()
        router = fit_router(pairs(train), pairs(calibration), encoder_kind=kind, encoder=encoder)
        fit_s += time.perf_counter() - started
        thresholds.append(router.meta.threshold)
        for example, prediction in zip(reported, router.predict([e.text for e in reported]), strict=True):
            predictions[position[id(example)]] = prediction
    return score([e.intent for e in val], [p for p in predictions if p is not None]), thresholds, fit_s


def development(
    carved: DevelopmentSplit, kind: str, encoder: TextEncoder | None
) -> tuple[Scores, Router, float, float]:
    """(figures on the development split, the router, fit seconds, scoring texts/s)."""
    started = time.perf_counter()
    router = fit_router(pairs(carved.train), pairs(carved.val), encoder_kind=kind, encoder=encoder)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    predictions = router.predict([e.text for e in carved.development])
    rate = len(carved.development) / (time.perf_counter() - started)
    return score([e.intent for e in carved.development], predictions), router, fit_s, rate


def table(kind: str, dev: Scores, halves: Scores, thresholds: Sequence[float], dev_threshold: float) -> None:
    print(
        f"\n| {kind} | development split ({dev.in_scope_count} in scope + {dev.oos_count} oos; unseen) "
        f"| val halves ({halves.in_scope_count} + {halves.oos_count}; val shaped earlier choices) |"
    )
    print("| --- | --- | --- |")
    rows = [
        ("in-scope accuracy", dev.in_scope_accuracy, halves.in_scope_accuracy),
        ("out-of-scope recall", dev.oos_recall, halves.oos_recall),
        ("out-of-scope precision", dev.oos_precision, halves.oos_precision),
        ("overall accuracy (the split's own mix)", dev.overall_accuracy, halves.overall_accuracy),
        (
            "overall accuracy at the test mix (4500 + 1000)",
            dev.reweighted(TEST_MIX),
            halves.reweighted(TEST_MIX),
        ),
        ("out-of-scope AUROC", dev.oos_auroc, halves.oos_auroc),
    ]
    for name, a, b in rows:
        print(f"| {name} | {a:.4f} | {b:.4f} |")
    print(f"| threshold | {dev_threshold:.2f} | {thresholds[0]:.2f}, {thresholds[1]:.2f} |")


def accuracy(
    data: Path,
    train: list[Example],
    val: list[Example],
    kind: str,
    *,
    fine_tune: FineTuneConfig | None,
    retune: bool,
) -> Router:
    """Prints both protocols' figures; returns the development protocol's router."""
    carved = development_split(train, val)
    print(
        f"\nencoder {kind}: development split {len(carved.development)} rows (seed {DEVELOPMENT_SEED}); "
        f"fitted on {len(carved.train)} train + {len(carved.val)} calibration rows"
    )
    chosen = sentence_encoder(kind, os.environ)
    if isinstance(chosen, MiniLmEncoder) and fine_tune is not None:
        chosen = tuned_minilm(data, carved, fine_tune, retune)
    encoder = None if chosen is None else _Memo(chosen)
    dev, router, dev_fit_s, rate = development(carved, kind, encoder)
    print(
        f"development: in scope {dev.in_scope_accuracy:.4f}, out-of-scope recall {dev.oos_recall:.4f}, "
        f"test mix {dev.reweighted(TEST_MIX):.4f} (router fitted in {dev_fit_s:.0f}s)",
        flush=True,
    )
    if encoder is not None:
        compare_out_of_scope_scores(carved, kind, encoder, TEST_MIX)
    halves, thresholds, halves_fit_s = val_halves(train, val, kind, encoder)
    print(f"routers fitted in {dev_fit_s:.0f}s (development) and {halves_fit_s:.0f}s (two val halves)")
    table(kind, dev, halves, thresholds, router.meta.threshold)
    print(f"| offline batch throughput | {rate:.0f} texts/s | |", flush=True)
    return router


async def serving(model_dir: Path, texts: list[str], clients: int, requests: int) -> None:
    """The language service in its own process (``hivemesh serve language``), load from this one."""
    env = {"HIVEMESH_NLU_MODEL": str(model_dir)}
    async with served("language", env) as address, grpc.aio.insecure_channel(address) as channel:
        stub = LanguageServiceStub(channel)
        lone = []
        for text in texts[:300]:
            one = time.perf_counter()
            await stub.Understand(pb.UnderstandRequest(text=text))
            lone.append(time.perf_counter() - one)
        p50, p99 = np.percentile(np.array(lone) * 1000, [50, 99])
        print("\n| serving (gRPC, server in its own process) | value |\n| --- | --- |")
        print(f"| lone request p50 / p99 | {p50:.2f} ms / {p99:.2f} ms |")
        counter = iter(range(requests))

        async def client() -> None:
            for i in counter:
                await stub.Understand(pb.UnderstandRequest(text=texts[i % len(texts)]))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        rate = requests / (time.perf_counter() - started)
        print(f"| Understand throughput, {clients} concurrent clients | {rate:.0f} requests/s |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nlu")
    parser.add_argument(
        "--encoder", choices=ENCODERS, action="append", help="repeatable (default: lexical and minilm)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--no-serving", action="store_true")
    parser.add_argument("--no-fine-tune", action="store_true", help="minilm: the shipped weights as they are")
    parser.add_argument("--retune", action="store_true", help="minilm: fine-tune afresh, not from the cache")
    parser.add_argument(
        "--threads", type=int, default=FineTuneConfig().threads, help="torch threads to fine-tune"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    splits = load_splits(args.data)
    train, val = require(splits, "train", args.data), require(splits, "val", args.data)
    tuning = None if args.no_fine_tune else FineTuneConfig(threads=args.threads)
    for kind in args.encoder or ["lexical", "minilm"]:
        router = accuracy(args.data, train, val, kind, fine_tune=tuning, retune=args.retune)
        if args.no_serving:
            continue
        with tempfile.TemporaryDirectory() as model_dir:
            router.save(Path(model_dir))
            asyncio.run(serving(Path(model_dir), [e.text for e in val], args.clients, args.requests))


if __name__ == "__main__":
    main()

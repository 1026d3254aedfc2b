"""``python -m benchmarks.nlu --encoder lexical|minilm``

Protocol (no reported example takes part in a choice that scores it, nor in the router that scores
it): ``val`` is split in two stratified halves. For each half, ``fit_router`` is run as ``hivemesh
nlu train`` runs it, with CLINC150 ``train`` as the training split and the *other* half as the
calibration split (fitted on both, threshold from the declared rule on cross-fitted scores of that
half); the router then scores the half it never saw. The two halves' predictions are pooled for
the figures. The dataset is read from ``<repo>/../shared/data/clinc150/train_val.json``
(``--data`` overrides). Serving figures come from ``hivemesh serve language`` in its own process,
loaded from this one, with the first half's router.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import numpy as np

from benchmarks.serving import served
from hivemesh.language.nlu.dataset import Example, load_splits, require, stratified_holdout
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.evaluation import score
from hivemesh.language.nlu.factory import ENCODERS, sentence_encoder
from hivemesh.language.nlu.router import LayeredEncoder, Prediction, Router
from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.language.nlu.training import fit_router
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "clinc150" / "train_val.json"


class _Memo:
    """The benchmark's encoder, remembering what it encoded: the two halves' fits share most texts."""

    def __init__(self, encoder: TextEncoder) -> None:
        self._encoder = encoder
        self._rows: dict[tuple[str, tuple[int, ...]], FloatArray] = {}

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dimensions(self) -> int:
        return self._encoder.dimensions

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


def accuracy(train: list[Example], val: list[Example], kind: str, encoder: TextEncoder | None) -> Router:
    """Prints the figures; returns the router fitted with the first half as calibration split."""
    first, second = stratified_holdout(val, 0.5, seed=1)
    position = {id(e): i for i, e in enumerate(val)}
    predictions: list[Prediction | None] = [None] * len(val)
    routers, fit_s, scoring_s = [], 0.0, 0.0
    for reported, calibration in ((second, first), (first, second)):
        started = time.perf_counter()
        router = fit_router(
            [(e.text, e.intent) for e in train],
            [(e.text, e.intent) for e in calibration],
            encoder_kind=kind,
            encoder=encoder,
        )
        fit_s += time.perf_counter() - started
        routers.append(router)
        started = time.perf_counter()
        decided = router.predict([e.text for e in reported])
        scoring_s += time.perf_counter() - started
        for example, prediction in zip(reported, decided, strict=True):
            predictions[position[id(example)]] = prediction
    print(f"encoder {kind}: two routers fitted on {len(train)} + {len(first)} examples in {fit_s:.0f}s")
    figures = score([e.intent for e in val], [p for p in predictions if p is not None])
    thresholds = [r.meta.threshold for r in routers]
    print(f"\n| figure (CLINC150 val: {figures.in_scope_count} in scope + {figures.oos_count} oos) | value |")
    print("| --- | --- |")
    print(f"| in-scope accuracy | {figures.in_scope_accuracy:.4f} |")
    print(f"| out-of-scope recall | {figures.oos_recall:.4f} |")
    print(f"| out-of-scope precision | {figures.oos_precision:.4f} |")
    print(f"| overall accuracy (val mix) | {figures.overall_accuracy:.4f} |")
    print(f"| overall accuracy at the test mix (4500 + 1000) | {figures.reweighted(1000 / 5500):.4f} |")
    print(f"| out-of-scope AUROC | {figures.oos_auroc:.4f} |")
    print(f"| thresholds (calibrated on half 1, half 2) | {thresholds[0]:.2f}, {thresholds[1]:.2f} |")
    print(f"| offline batch throughput | {len(val) / scoring_s:.0f} texts/s |")
    return routers[0]


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
    parser.add_argument("--encoder", choices=ENCODERS, default="lexical")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--no-serving", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    splits = load_splits(args.data)
    train, val = require(splits, "train", args.data), require(splits, "val", args.data)
    chosen = sentence_encoder(args.encoder, os.environ)
    router = accuracy(train, val, args.encoder, None if chosen is None else _Memo(chosen))
    if args.no_serving:
        return
    with tempfile.TemporaryDirectory() as model_dir:
        router.save(Path(model_dir))
        asyncio.run(serving(Path(model_dir), [e.text for e in val], args.clients, args.requests))


if __name__ == "__main__":
    main()

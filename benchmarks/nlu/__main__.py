"""``python -m benchmarks.nlu --encoder lexical|minilm``

Protocol (no reported example takes part in a choice that scores it): the router is fitted on
CLINC150 ``train``. ``val`` is split in two stratified halves; each half is scored with the
threshold that the declared rule of ``hivemesh.language.nlu.training`` picks on the other half
(2-fold cross-calibration), and the two halves' predictions are pooled for the figures.
The dataset is read from
``<repo>/../shared/data/clinc150/train_val.json`` (``--data`` overrides). Serving figures come
from ``hivemesh serve language`` in its own process, loaded from this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np

from benchmarks.serving import served
from hivemesh.language.nlu.dataset import load_splits, require, stratified_holdout
from hivemesh.language.nlu.evaluation import score
from hivemesh.language.nlu.factory import ENCODERS, sentence_encoder
from hivemesh.language.nlu.router import Router
from hivemesh.language.nlu.training import choose_threshold, fit_router
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "clinc150" / "train_val.json"


def accuracy(router: Router, data: Path) -> float:
    """Prints the figures; returns the mean of the two folds' thresholds (used for serving)."""
    val = require(load_splits(data), "val", data)
    started = time.perf_counter()
    scored = router.score([e.text for e in val])
    elapsed = time.perf_counter() - started
    first, second = stratified_holdout(val, 0.5, seed=1)
    position = {id(e): i for i, e in enumerate(val)}
    predictions = list(router.decide(scored))
    thresholds = []
    for chosen_on, applied_to in ((first, second), (second, first)):
        rows = np.array([position[id(e)] for e in chosen_on])
        picked = choose_threshold(scored.take(rows), [e.intent for e in chosen_on], router.intents)
        thresholds.append(picked.threshold)
        fold = Router(replace(router.meta, threshold=picked.threshold), router.featurizer, router.model)
        targets = np.array([position[id(e)] for e in applied_to])
        for index, prediction in zip(targets, fold.decide(scored.take(targets)), strict=True):
            predictions[index] = prediction
    figures = score([e.intent for e in val], predictions)
    print(f"\n| figure (CLINC150 val: {figures.in_scope_count} in scope + {figures.oos_count} oos) | value |")
    print("| --- | --- |")
    print(f"| in-scope accuracy | {figures.in_scope_accuracy:.4f} |")
    print(f"| out-of-scope recall | {figures.oos_recall:.4f} |")
    print(f"| out-of-scope precision | {figures.oos_precision:.4f} |")
    print(f"| overall accuracy (val mix) | {figures.overall_accuracy:.4f} |")
    print(f"| overall accuracy at the test mix (4500 + 1000) | {figures.reweighted(1000 / 5500):.4f} |")
    print(f"| out-of-scope AUROC | {figures.oos_auroc:.4f} |")
    print(f"| thresholds (fold 1, fold 2) | {thresholds[0]:.2f}, {thresholds[1]:.2f} |")
    print(f"| offline batch throughput | {len(val) / elapsed:.0f} texts/s |")
    return float(np.mean(thresholds))


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
    train = require(load_splits(args.data), "train", args.data)
    started = time.perf_counter()
    encoder = sentence_encoder(args.encoder, os.environ)
    router = fit_router([(e.text, e.intent) for e in train], [], encoder_kind=args.encoder, encoder=encoder)
    print(f"encoder {args.encoder}: fitted on {len(train)} examples in {time.perf_counter() - started:.0f}s")
    threshold = accuracy(router, args.data)
    router = Router(replace(router.meta, threshold=threshold), router.featurizer, router.model)
    if args.no_serving:
        return
    with tempfile.TemporaryDirectory() as model_dir:
        router.save(Path(model_dir))
        texts = [e.text for e in require(load_splits(args.data), "val", args.data)]
        asyncio.run(serving(Path(model_dir), texts, args.clients, args.requests))


if __name__ == "__main__":
    main()

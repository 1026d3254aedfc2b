"""Fitting a router and choosing its out-of-scope threshold.

The threshold rule (declared in docs/language.md) applies to the in-scope score, the probability
of the best intent against ``oos`` (see ``router.py``). On the calibration split, pick the
threshold t on a 0.01 grid that maximises

    (1 - p) * in-scope accuracy(t) + p * out-of-scope recall(t),     p = ``oos_prior`` (0.18),

i.e. the overall accuracy expected on traffic where that share of requests is out of scope (0.18:
CLINC150's test mix, 1,000 of 5,500); ties go to the lowest t. When the calibration split has no
out-of-scope example, t is the 3rd percentile of the in-scope score of its in-scope examples
(about 3 in 100 in-scope requests are refused).
The calibration split is the data file's ``val`` split, or a stratified 20 % of ``train`` held out
from fitting when there is no ``val``; it is never the split a figure is reported on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from hivemesh.language.nlu import linear
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.lexical import LexicalConfig, LexicalFeaturizer
from hivemesh.language.nlu.minilm import FineTuneConfig, FineTuneReport
from hivemesh.language.nlu.router import (
    ENCODER_WEIGHTS_DIR,
    OOS,
    Featurizer,
    LayeredEncoder,
    Router,
    RouterMeta,
    Scored,
    TunedEncoder,
    dense_block,
    own_weights,
)
from hivemesh.language.nlu.sparse import IntArray

# How routers are fitted, part of the name a cached router is kept under. 2: the calibration split
# is learned from as well, and the threshold is chosen on its cross-fitted scores. 3: the rule's
# out-of-scope share is 0.18 (was 0.2).
TRAINING_VERSION = 3
# The out-of-scope share of traffic the threshold is chosen for: CLINC150's test mix (1000 / 5500).
DEFAULT_OOS_PRIOR = 0.18
FALLBACK_PERCENTILE = 3.0
# Hidden states pooled beside the n-grams when the encoder can pool layers (minilm; 6 = its last).
# Chosen by 3-fold cross-validation on CLINC150 train (docs/language.md).
DEFAULT_LAYERS = (2, 4, 6)


@dataclass(frozen=True)
class TrainOptions:
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    fit: linear.TrainConfig = field(default_factory=linear.TrainConfig)
    oos_prior: float = DEFAULT_OOS_PRIOR
    # Weight of each unit-norm embedding block beside the unit-norm n-gram blocks. 2.0 was first
    # tuned on CLINC150 val; with layers, 3.0 did no better in a fold of cross-validation on train.
    embedding_scale: float = 2.0
    # Encoder layers to pool, for an encoder that can (others use their sentence embedding).
    embedding_layers: tuple[int, ...] = DEFAULT_LAYERS
    # Fine-tune the encoder on the training split (never the calibration split) before fitting,
    # for an encoder that can be fine-tuned; None: use it as it is.
    fine_tune: FineTuneConfig | None = None


@runtime_checkable
class TunableEncoder(Protocol):
    """An encoder ``fit_router`` can fine-tune on the training split (``MiniLmEncoder``)."""

    def fine_tune(
        self, texts: Sequence[str], labels: Sequence[str], config: FineTuneConfig | None = None
    ) -> FineTuneReport: ...


@dataclass(frozen=True)
class Calibration:
    threshold: float
    rule: str
    in_scope_accuracy: float
    oos_recall: float


def choose_threshold(
    scored: Scored,
    gold: Sequence[str],
    intents: Sequence[str],
    oos_prior: float = DEFAULT_OOS_PRIOR,
    grid: Sequence[float] | None = None,
) -> Calibration:
    """Apply the declared rule to the scored calibration texts (probability columns = ``intents``).

    ``grid``: the thresholds tried, for an in-scope score that is not a probability (default: 0 to
    0.99 by 0.01)."""
    best = scored.in_scope
    predicted = np.array(intents)[scored.probabilities.argmax(axis=1)]
    gold_array = np.array(gold)
    is_oos = gold_array == OOS
    right_intent = predicted == gold_array
    if not is_oos.any():
        threshold = float(np.percentile(best[~is_oos], FALLBACK_PERCENTILE)) if len(best) else 0.0
        kept = best >= threshold
        return Calibration(
            threshold, "in-scope percentile", float((right_intent & kept)[~is_oos].mean()), float("nan")
        )
    chosen: Calibration | None = None
    objective = -1.0
    candidates = np.round(np.arange(0.0, 1.0, 0.01), 2) if grid is None else np.sort(np.asarray(grid))
    for threshold in candidates:
        kept = best >= threshold
        accuracy = float((right_intent & kept)[~is_oos].mean()) if (~is_oos).any() else 0.0
        recall = float((~kept)[is_oos].mean())
        value = (1.0 - oos_prior) * accuracy + oos_prior * recall
        if value > objective + 1e-12:
            objective = value
            rule = f"prior-weighted accuracy, p={oos_prior}"
            chosen = Calibration(float(threshold), rule, accuracy, recall)
    assert chosen is not None  # the grid is not empty
    return chosen


def fit_router(
    train: Sequence[tuple[str, str]],
    calibration: Sequence[tuple[str, str]],
    *,
    encoder_kind: str = "lexical",
    encoder: TextEncoder | None = None,
    options: TrainOptions | None = None,
    info: dict[str, str] | None = None,
) -> Router:
    """Fit on ``train`` and ``calibration`` ((text, intent) pairs, ``oos`` = out of scope); the
    threshold comes from the declared rule applied to cross-fitted calibration scores.

    Cross-fitting: the calibration examples are split into ``CROSS_FIT_FOLDS`` stratified parts;
    each part is scored by a router fitted on ``train`` and the other parts, so every calibration
    score comes from a router that did not see that example. The rule picks the threshold on those
    pooled scores, and the router returned is fitted on everything. The calibration split thus
    teaches the router too (its examples are often closer to real traffic than ``train``'s), while
    the threshold is still chosen on examples the scoring router had not seen. Calibration
    examples of intents ``train`` does not have are ignored.
    """
    opts = options or TrainOptions()
    if not train:
        raise ValueError("no training examples")
    labels = tuple(sorted({intent for _, intent in train} | {OOS}))
    index = {label: i for i, label in enumerate(labels)}
    known = [(text, intent) for text, intent in calibration if intent in index]
    pairs = [*train, *known]
    texts = [text for text, _ in pairs]
    y = np.array([index[intent] for _, intent in pairs], dtype=np.int64)
    layers = opts.embedding_layers if isinstance(encoder, LayeredEncoder) else ()
    tuning: dict[str, str] = {}
    if opts.fine_tune is not None and isinstance(encoder, TunableEncoder):
        report = encoder.fine_tune(
            [text for text, _ in train], [intent for _, intent in train], opts.fine_tune
        )
        tuning = {
            "fine_tune": f"{report.steps} steps, {report.examples_seen} examples, "
            f"{report.seconds:.0f}s on {report.threads} threads, final loss {report.final_loss:.4f}",
            "fine_tune_examples": str(len(train)),
        }
    # The dense block of every text, computed once for all the fits below.
    dense = dense_block(encoder, layers, texts)
    has_dense = encoder is not None
    provisional = RouterMeta(
        encoder=encoder_kind,
        embedding_model=encoder.name if encoder is not None else "",
        labels=labels,
        threshold=0.0,
        embedding_scale=opts.embedding_scale,
        lexical=opts.lexical,
        info={},
        embedding_layers=layers,
        encoder_weights=ENCODER_WEIGHTS_DIR if own_weights(encoder) else "",
    )

    def fit_on(rows: IntArray) -> Router:
        chosen = [texts[i] for i in rows]
        lexical = LexicalFeaturizer.fit(chosen, opts.lexical)
        featurizer = Featurizer(lexical, encoder, opts.embedding_scale, layers)
        features = featurizer.transform(chosen, dense[rows] if has_dense else None)
        return Router(provisional, featurizer, linear.fit(features, y[rows], len(labels), opts.fit))

    def score_held(fitted: IntArray, held: IntArray) -> Scored:
        router = fit_on(fitted)
        return router.score([texts[i] for i in held], dense[held] if has_dense else None)

    if known:
        calibrated = _cross_fitted_threshold(known, len(train), score_held, intents_of(labels), opts)
    else:
        calibrated = Calibration(0.0, "no calibration data", float("nan"), float("nan"))
    router = fit_on(np.arange(len(pairs)))
    meta = replace(
        provisional,
        threshold=calibrated.threshold,
        info={
            **(info or {}),
            **tuning,
            **(
                {"encoder_weights_sha256": encoder.weights_digest()}
                if isinstance(encoder, TunedEncoder) and own_weights(encoder)
                else {}
            ),
            "threshold_rule": calibrated.rule,
            "calibration_examples": str(len(known)),
            "calibration_in_scope_accuracy": f"{calibrated.in_scope_accuracy:.4f}",
            "calibration_oos_recall": f"{calibrated.oos_recall:.4f}",
        },
    )
    return Router(meta, router.featurizer, router.model)


# Parts the calibration split is cut into for cross-fitting.
CROSS_FIT_FOLDS = 2


def intents_of(labels: Sequence[str]) -> tuple[str, ...]:
    """The in-scope labels, in the order of a router's probability columns."""
    return tuple(label for label in labels if label != OOS)


def _cross_fitted_threshold(
    known: Sequence[tuple[str, str]],
    n_train: int,
    score_held: Callable[[IntArray, IntArray], Scored],
    intents: Sequence[str],
    opts: TrainOptions,
) -> Calibration:
    """The declared rule on calibration scores from routers that did not see the scored example;
    rows number ``train`` first, then ``known``."""
    folds = _stratified_folds([intent for _, intent in known], CROSS_FIT_FOLDS)
    probabilities = np.zeros((len(known), len(intents)), dtype=np.float32)
    in_scope = np.zeros(len(known), dtype=np.float32)
    for fold in range(CROSS_FIT_FOLDS):
        held = np.flatnonzero(folds == fold)
        if not len(held):
            continue
        fitted = np.concatenate([np.arange(n_train), n_train + np.flatnonzero(folds != fold)])
        scored = score_held(fitted, n_train + held)
        probabilities[held] = scored.probabilities
        in_scope[held] = scored.in_scope
    calibrated = choose_threshold(
        Scored(probabilities, in_scope), [intent for _, intent in known], intents, opts.oos_prior
    )
    return replace(calibrated, rule=f"{calibrated.rule}, {CROSS_FIT_FOLDS}-fold cross-fitted")


def _stratified_folds(intents: Sequence[str], folds: int, seed: int = 0) -> IntArray:
    """A fold number per example, each intent's examples dealt round-robin in a shuffled order."""
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(intents), dtype=np.int64)
    by_intent: dict[str, list[int]] = {}
    for i, intent in enumerate(intents):
        by_intent.setdefault(intent, []).append(i)
    offset = 0
    for intent in sorted(by_intent):
        rows = np.array(by_intent[intent])[rng.permutation(len(by_intent[intent]))]
        assignment[rows] = (offset + np.arange(len(rows))) % folds
        offset += len(rows)
    return assignment

"""Fitting a router and choosing its out-of-scope threshold.

The threshold rule (declared in docs/language.md) applies to the in-scope score, the probability
of the best intent against ``oos`` (see ``router.py``). On the calibration split, pick the
threshold t on a 0.01 grid that maximises

    (1 - p) * in-scope accuracy(t) + p * out-of-scope recall(t),     p = ``oos_prior`` (0.2),

i.e. the accuracy expected on traffic where one request in five is out of scope; ties go to the
lowest t. When the calibration split has no out-of-scope example, t is the 3rd percentile of the
in-scope score of its in-scope examples (about 3 in 100 in-scope requests are refused).
The calibration split is the data file's ``val`` split, or a stratified 20 % of ``train`` held out
from fitting when there is no ``val``; it is never the split a figure is reported on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hivemesh.language.nlu import linear
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.lexical import LexicalConfig, LexicalFeaturizer
from hivemesh.language.nlu.router import OOS, Featurizer, LayeredEncoder, Router, RouterMeta, Scored

DEFAULT_OOS_PRIOR = 0.2
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


@dataclass(frozen=True)
class Calibration:
    threshold: float
    rule: str
    in_scope_accuracy: float
    oos_recall: float


def choose_threshold(
    scored: Scored, gold: Sequence[str], intents: Sequence[str], oos_prior: float = DEFAULT_OOS_PRIOR
) -> Calibration:
    """Apply the declared rule to the scored calibration texts (probability columns = ``intents``)."""
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
    for threshold in np.round(np.arange(0.0, 1.0, 0.01), 2):
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
    """Fit on ``train`` ((text, intent) pairs, ``oos`` = out of scope) and calibrate on ``calibration``."""
    opts = options or TrainOptions()
    if not train:
        raise ValueError("no training examples")
    labels = tuple(sorted({intent for _, intent in train} | {OOS}))
    index = {label: i for i, label in enumerate(labels)}
    texts = [text for text, _ in train]
    lexical = LexicalFeaturizer.fit(texts, opts.lexical)
    layers = opts.embedding_layers if isinstance(encoder, LayeredEncoder) else ()
    featurizer = Featurizer(lexical, encoder, opts.embedding_scale, layers)
    y = np.array([index[intent] for _, intent in train], dtype=np.int64)
    model = linear.fit(featurizer.transform(texts), y, len(labels), opts.fit)
    provisional = RouterMeta(
        encoder=encoder_kind,
        embedding_model=encoder.name if encoder is not None else "",
        labels=labels,
        threshold=0.0,
        embedding_scale=opts.embedding_scale,
        lexical=opts.lexical,
        info={},
        embedding_layers=layers,
    )
    router = Router(provisional, featurizer, model)
    known = [(text, intent) for text, intent in calibration if intent in index]
    if known:
        scored = router.score([text for text, _ in known])
        calibrated = choose_threshold(scored, [intent for _, intent in known], router.intents, opts.oos_prior)
    else:
        calibrated = Calibration(0.0, "no calibration data", float("nan"), float("nan"))
    meta = replace(
        provisional,
        threshold=calibrated.threshold,
        info={
            **(info or {}),
            "threshold_rule": calibrated.rule,
            "calibration_examples": str(len(known)),
            "calibration_in_scope_accuracy": f"{calibrated.in_scope_accuracy:.4f}",
            "calibration_oos_recall": f"{calibrated.oos_recall:.4f}",
        },
    )
    return Router(meta, featurizer, model)

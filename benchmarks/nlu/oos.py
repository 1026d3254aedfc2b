"""Out-of-scope scores compared on the development split: the router's pairwise score against
scores that read the embedding geometry.

Every score comes from one scorer fitted on the development protocol's train rows only: the router
fitted without a calibration split (its intent, pairwise score, best probability and energy), and
the class statistics of the encoder's sentence embeddings of those rows (nearest centroid,
Mahalanobis distance). The calibration rows were seen neither by that scorer nor by the encoder,
so each score's threshold is chosen by the declared rule (``choose_threshold``, over the score's
own quantiles) on held-out scores, without cross-fitting. The development split only reports: all
candidates side by side, none chosen by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hivemesh.language.nlu.dataset import DevelopmentSplit, Example
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.evaluation import auroc
from hivemesh.language.nlu.router import OOS, Router, Scored
from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.language.nlu.training import DEFAULT_OOS_PRIOR, choose_threshold, fit_router

# Added to the shared covariance's diagonal, relative to its mean variance: 384 dimensions from
# 12,000 rows are estimable, but the smallest directions are noise.
SHRINKAGE = 0.05
GRID_POINTS = 401


class _Geometry:
    """Per in-scope intent, the centroid of its training rows' sentence embeddings, and the
    whitening of their shared within-intent covariance."""

    def __init__(self, vectors: FloatArray, intents: Sequence[str], names: Sequence[str]) -> None:
        labels = np.array(intents)
        self.means = np.stack([vectors[labels == name].mean(axis=0) for name in names])
        centred = vectors - self.means[np.searchsorted(np.array(names), labels)]
        covariance = centred.T @ centred / max(1, len(centred) - len(names))
        covariance += SHRINKAGE * float(np.trace(covariance)) / len(covariance) * np.eye(len(covariance))
        values, vectors_ = np.linalg.eigh(covariance)
        self.whiten = vectors_ / np.sqrt(values)
        self.white_means = self.means @ self.whiten

    def centroid(self, vectors: FloatArray) -> FloatArray:
        unit = self.means / np.linalg.norm(self.means, axis=1, keepdims=True)
        result: FloatArray = (vectors @ unit.T).max(axis=1)
        return result

    def mahalanobis(self, vectors: FloatArray) -> FloatArray:
        """Minus the smallest squared Mahalanobis distance to an intent's centroid."""
        white = vectors @ self.whiten
        squared = (
            (white**2).sum(axis=1, keepdims=True)
            - 2.0 * white @ self.white_means.T
            + (self.white_means**2).sum(axis=1)
        )
        result: FloatArray = -squared.min(axis=1)
        return result


def _scores(
    router: Router, geometry: _Geometry, encoder: TextEncoder, texts: list[str]
) -> tuple[FloatArray, dict[str, FloatArray]]:
    """(in-scope probabilities, score name -> in-scope score; higher = more in scope)."""
    logits = router.model.logits(router.featurizer.transform(texts))
    scored = router.score(texts)
    in_scope_logits = np.delete(logits, router.meta.labels.index(OOS), axis=1)
    top = in_scope_logits.max(axis=1, keepdims=True)
    energy = (top[:, 0] + np.log(np.exp(in_scope_logits - top).sum(axis=1))).astype(np.float32)
    sentences = encoder.encode(texts)
    return scored.probabilities, {
        "pairwise: best intent against oos (the router's)": scored.in_scope,
        "best intent's probability": scored.probabilities.max(axis=1),
        "energy: logsumexp of the intent logits": energy,
        "cosine to the nearest intent centroid": geometry.centroid(sentences),
        "Mahalanobis distance to the nearest intent (negated)": geometry.mahalanobis(sentences),
    }


def compare_out_of_scope_scores(
    carved: DevelopmentSplit, kind: str, encoder: TextEncoder, mix: float
) -> None:
    scorer = fit_router([(e.text, e.intent) for e in carved.train], [], encoder_kind=kind, encoder=encoder)
    names = list(scorer.intents)
    in_scope_rows = [e for e in carved.train if e.intent != OOS]
    geometry = _Geometry(
        encoder.encode([e.text for e in in_scope_rows]), [e.intent for e in in_scope_rows], names
    )
    calibration, reported = _side(carved.val), _side(carved.development)
    cal_probabilities, cal_scores = _scores(scorer, geometry, encoder, calibration[0])
    dev_probabilities, dev_scores = _scores(scorer, geometry, encoder, reported[0])
    predicted = np.array(names)[dev_probabilities.argmax(axis=1)]
    gold = np.array(reported[1])
    is_oos = gold == OOS
    right = predicted == gold
    print(
        f"\n| out-of-scope score ({kind}; scorer fitted on train rows only, threshold by the rule on "
        f"{len(calibration[0])} calibration rows, reported on the development split) | threshold "
        "| in-scope accuracy | out-of-scope recall | overall at the test mix | AUROC |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, cal in cal_scores.items():
        grid = np.quantile(cal, np.linspace(0.0, 1.0, GRID_POINTS))
        chosen = choose_threshold(
            Scored(cal_probabilities, cal), calibration[1], names, DEFAULT_OOS_PRIOR, grid.tolist()
        )
        kept = dev_scores[name] >= chosen.threshold
        accuracy = float((right & kept)[~is_oos].mean())
        recall = float((~kept)[is_oos].mean())
        area = auroc(-dev_scores[name][is_oos], -dev_scores[name][~is_oos])
        print(
            f"| {name} | {chosen.threshold:.4g} | {accuracy:.4f} | {recall:.4f} "
            f"| {(1 - mix) * accuracy + mix * recall:.4f} | {area:.4f} |",
            flush=True,
        )


def _side(examples: Sequence[Example]) -> tuple[list[str], list[str]]:
    return [e.text for e in examples], [e.intent for e in examples]

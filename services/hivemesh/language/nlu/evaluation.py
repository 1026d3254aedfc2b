"""Router quality figures, as the CLINC150 paper reports them, plus out-of-scope AUROC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hivemesh.language.nlu.router import OOS, Prediction


@dataclass(frozen=True)
class Scores:
    in_scope_accuracy: float
    oos_recall: float
    oos_precision: float
    overall_accuracy: float
    oos_auroc: float
    in_scope_count: int
    oos_count: int

    def reweighted(self, oos_share: float) -> float:
        """Overall accuracy on a mix with ``oos_share`` out-of-scope requests (CLINC150 test: 1000/5500)."""
        return (1.0 - oos_share) * self.in_scope_accuracy + oos_share * self.oos_recall


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half), via ranks."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    values = np.concatenate([pos, neg])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = ranks[: len(pos)].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def score(gold: Sequence[str], predictions: Sequence[Prediction]) -> Scores:
    is_oos = np.array([g == OOS for g in gold])
    correct = np.array([p.intent == g for p, g in zip(predictions, gold, strict=True)])
    said_oos = np.array([p.out_of_scope for p in predictions])
    oos_score = np.array([1.0 - p.in_scope_score for p in predictions])
    n_oos = int(is_oos.sum())
    n_in = len(gold) - n_oos
    return Scores(
        in_scope_accuracy=float(correct[~is_oos].mean()) if n_in else float("nan"),
        oos_recall=float(said_oos[is_oos].mean()) if n_oos else float("nan"),
        oos_precision=float(is_oos[said_oos].mean()) if said_oos.any() else float("nan"),
        overall_accuracy=float(correct.mean()) if len(gold) else float("nan"),
        oos_auroc=auroc(oos_score[is_oos], oos_score[~is_oos]),
        in_scope_count=n_in,
        oos_count=n_oos,
    )

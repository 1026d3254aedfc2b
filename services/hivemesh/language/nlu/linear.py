"""Multinomial logistic regression trained with mini-batch Adam on sparse rows, in numpy.

Only the weight rows a batch touches are updated (lazy Adam), so an epoch over tens of thousands
of n-gram columns costs time proportional to the non-zeros, not to the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hivemesh.language.nlu.sparse import Csr, FloatArray, IntArray

# Sentence embeddings arrive dense (a bias column appended); n-gram features arrive sparse.
Features = Csr | FloatArray


@dataclass(frozen=True)
class TrainConfig:
    """Defaults chosen by 3-fold cross-validation on CLINC150 ``train`` alone (docs/language.md)."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 0.01
    # L2 penalty per touched row and step; keeps rare n-grams from memorising single examples.
    # 1e-5 and above cost in-scope accuracy in cross-validation; none at all cost it too.
    l2: float = 1e-6
    seed: int = 0


@dataclass(frozen=True)
class LinearModel:
    """``softmax(x @ weights)``; column 0 of ``x`` is the bias, so there is no separate intercept."""

    weights: FloatArray

    def logits(self, x: Features) -> FloatArray:
        return _dot(x, self.weights)

    def probabilities(self, x: Features) -> FloatArray:
        return softmax(self.logits(x))


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return result


def n_rows(x: Features) -> int:
    return x.n_rows if isinstance(x, Csr) else len(x)


def n_cols(x: Features) -> int:
    return x.n_cols if isinstance(x, Csr) else int(x.shape[1])


def _dot(x: Features, weights: FloatArray) -> FloatArray:
    if isinstance(x, Csr):
        return x.dot(weights)
    result: FloatArray = x @ weights
    return result


def _take(x: Features, rows: IntArray) -> Features:
    return x.take(rows) if isinstance(x, Csr) else x[rows]


def _tdot(x: Features, grad: FloatArray) -> tuple[IntArray | slice, FloatArray]:
    if isinstance(x, Csr):
        return x.tdot_rows(grad)
    return slice(None), x.T @ grad


def fit(x: Features, labels: IntArray, n_classes: int, config: TrainConfig | None = None) -> LinearModel:
    cfg = config or TrainConfig()
    rng = np.random.default_rng(cfg.seed)
    weights = np.zeros((n_cols(x), n_classes), dtype=np.float32)
    first = np.zeros_like(weights)
    second = np.zeros_like(weights)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    onehot = np.eye(n_classes, dtype=np.float32)
    for _ in range(cfg.epochs):
        order = rng.permutation(n_rows(x))
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            xb = _take(x, batch)
            grad_logits = (softmax(_dot(xb, weights)) - onehot[labels[batch]]) / np.float32(len(batch))
            columns, grad = _tdot(xb, grad_logits)
            grad += cfg.l2 * weights[columns]
            step += 1
            first[columns] = beta1 * first[columns] + (1 - beta1) * grad
            second[columns] = beta2 * second[columns] + (1 - beta2) * grad * grad
            corrected_lr = cfg.learning_rate * np.sqrt(1 - beta2**step) / (1 - beta1**step)
            weights[columns] -= corrected_lr * first[columns] / (np.sqrt(second[columns]) + eps)
    return LinearModel(weights)

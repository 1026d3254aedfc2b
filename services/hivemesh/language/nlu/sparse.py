"""A minimal compressed-sparse-row matrix: just the products a linear classifier needs.

Kept in numpy so the default router needs no scientific stack beyond it. Every row holds at least
one entry (callers add a bias column), which lets ``np.add.reduceat`` do the row sums safely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Csr:
    """Rows of (column, value) pairs; ``indptr[i]:indptr[i+1]`` slices row ``i``."""

    indptr: IntArray
    indices: IntArray
    data: FloatArray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Sequence[int], Sequence[float]]], n_cols: int) -> Csr:
        lengths = np.fromiter((len(cols) for cols, _ in rows), dtype=np.int64, count=len(rows))
        if len(rows) and int(lengths.min()) == 0:
            raise ValueError("every row needs at least one entry")
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.fromiter((c for cols, _ in rows for c in cols), dtype=np.int64, count=int(indptr[-1]))
        data = np.fromiter((v for _, vals in rows for v in vals), dtype=np.float32, count=int(indptr[-1]))
        return cls(indptr, indices, data, n_cols)

    @classmethod
    def from_dense(cls, dense: FloatArray) -> Csr:
        n, d = dense.shape
        indptr = np.arange(0, n * d + 1, d, dtype=np.int64)
        indices = np.tile(np.arange(d, dtype=np.int64), n)
        return cls(indptr, indices, dense.astype(np.float32).ravel(), d)

    def hstack(self, other: Csr) -> Csr:
        """Columns of ``self`` then columns of ``other``, row by row."""
        if self.n_rows != other.n_rows:
            raise ValueError("row counts differ")
        counts = np.diff(self.indptr) + np.diff(other.indptr)
        indptr = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        left_rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        right_rows = np.repeat(np.arange(other.n_rows), np.diff(other.indptr))
        rows = np.concatenate([left_rows, right_rows])
        order = np.argsort(rows, kind="stable")
        indices = np.concatenate([self.indices, other.indices + self.n_cols])[order]
        data = np.concatenate([self.data, other.data])[order]
        return Csr(indptr, indices, data, self.n_cols + other.n_cols)

    def take(self, rows: IntArray) -> Csr:
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Positions of every selected entry, built without a Python loop over rows.
        offsets = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        positions = np.repeat(starts, lengths) + offsets
        return Csr(indptr, self.indices[positions], self.data[positions], self.n_cols)

    def dot(self, weights: FloatArray) -> FloatArray:
        """``self @ weights`` for a dense (n_cols, k) matrix."""
        products = weights[self.indices] * self.data[:, None]
        result: FloatArray = np.add.reduceat(products, self.indptr[:-1], axis=0)
        return result

    def tdot_rows(self, grad: FloatArray) -> tuple[IntArray, FloatArray]:
        """``self.T @ grad`` restricted to the columns that occur: (columns, their rows of the product)."""
        row_of = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        order = np.argsort(self.indices, kind="stable")
        sorted_cols = self.indices[order]
        columns, starts = np.unique(sorted_cols, return_index=True)
        contributions = grad[row_of[order]] * self.data[order, None]
        sums: FloatArray = np.add.reduceat(contributions, starts, axis=0)
        return columns, sums

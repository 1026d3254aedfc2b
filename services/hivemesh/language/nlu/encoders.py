"""The text-encoder port and the built-in hashed lexical encoder.

An encoder turns texts into L2-normalised dense vectors. It backs ``Embed`` and, for the
sentence-embedding routers, the router's features. ``encode`` is synchronous and CPU- or I/O-bound:
callers run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hivemesh.language.nlu.lexical import char_grams, words
from hivemesh.language.nlu.sparse import FloatArray


class TextEncoder(Protocol):
    """Texts in, one L2-normalised float32 row per text out."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> FloatArray: ...


def l2_normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


# Function words say little about what a memory is about; they are kept at a low weight rather than
# dropped so that a text made only of them still gets a vector.
_FUNCTION_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "i",
        "me",
        "my",
        "mine",
        "you",
        "your",
        "yours",
        "we",
        "our",
        "he",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "their",
        "them",
        "this",
        "that",
        "these",
        "those",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "and",
        "or",
        "but",
        "do",
        "does",
        "did",
        "what",
        "what's",
        "whats",
        "who",
        "whom",
        "which",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "please",
        "tell",
    }
)


def stem(token: str) -> str:
    """A crude suffix strip ("parked" -> "park", "lists" -> "list"): enough to meet across tenses."""
    for suffix in ("ing", "ed", "es", "s"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


class HashedLexicalEncoder:
    """Signed feature hashing of words and character 3-4 grams into a fixed dimension.

    Needs no training and no state, so vectors written to long-term memory stay comparable across
    restarts and versions. Words weigh more than character grams; function words weigh little.
    """

    def __init__(self, dimensions: int = 512) -> None:
        self._dimensions = dimensions

    @property
    def name(self) -> str:
        return f"hivemesh-lexical-{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _slot(self, feature: str) -> tuple[int, float]:
        digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        return digest % self._dimensions, (1.0 if (digest >> 63) & 1 else -1.0)

    def vector(self, text: str) -> FloatArray:
        tokens = words(text)
        weights: defaultdict[str, float] = defaultdict(float)
        for token in tokens:
            weight = 0.15 if token in _FUNCTION_WORDS else 1.0
            root = stem(token)
            weights[f"w:{root}"] += 2.0 * weight
            for gram in char_grams([root], 3, 4):
                weights[gram] += 0.25 * weight
        vector = np.zeros(self._dimensions, dtype=np.float32)
        for feature, count in weights.items():
            slot, sign = self._slot(feature)
            vector[slot] += sign * (1.0 + math.log(count)) if count >= 1.0 else sign * count
        return vector

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        return l2_normalise(np.stack([self.vector(t) for t in texts]))

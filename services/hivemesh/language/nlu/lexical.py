"""Lexical features: TF-IDF over word 1-2 grams and character 2-5 grams inside word boundaries.

Words carry the meaning; character n-grams survive typos, plurals and unseen inflections, which
matters on short commands. Each block is L2-normalised on its own, so the long tail of character
n-grams cannot drown the few words of a short request.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hivemesh.language.nlu.sparse import Csr

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_DIGITS = re.compile(r"\d")


def normalise(text: str) -> str:
    # Digits are folded so "5 miles" and "12 miles" share features; the value is the slot's business.
    return _DIGITS.sub("0", text.lower().replace("\u2019", "'"))


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def word_grams(tokens: Sequence[str]) -> Iterable[str]:
    yield from (f"w:{t}" for t in tokens)
    yield from (f"b:{a} {b}" for a, b in itertools.pairwise(tokens))


def char_grams(tokens: Sequence[str], low: int = 2, high: int = 5) -> Iterable[str]:
    for token in tokens:
        padded = f" {token} "
        for n in range(low, high + 1):
            for i in range(len(padded) - n + 1):
                yield f"c:{padded[i : i + n]}"


@dataclass(frozen=True)
class LexicalConfig:
    """How many times a gram must occur in training to earn a column, and block weights."""

    min_df: int = 2
    word_weight: float = 1.0
    char_weight: float = 1.0


class LexicalFeaturizer:
    """Fitted vocabulary and IDF; ``transform`` returns a row-normalised sparse matrix.

    Column 0 is a constant bias, so every row is non-empty.
    """

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, config: LexicalConfig) -> None:
        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float32)
        self.config = config

    @property
    def n_features(self) -> int:
        return len(self.vocabulary) + 1

    @classmethod
    def fit(cls, texts: Sequence[str], config: LexicalConfig | None = None) -> LexicalFeaturizer:
        cfg = config or LexicalConfig()
        document_frequency: Counter[str] = Counter()
        for text in texts:
            tokens = words(text)
            document_frequency.update(set(word_grams(tokens)) | set(char_grams(tokens)))
        kept = sorted(g for g, df in document_frequency.items() if df >= cfg.min_df)
        vocabulary = {gram: i + 1 for i, gram in enumerate(kept)}
        n = len(texts)
        idf = np.array(
            [1.0] + [math.log((1 + n) / (1 + document_frequency[g])) + 1.0 for g in kept], dtype=np.float32
        )
        return cls(vocabulary, idf, cfg)

    def row(self, text: str) -> tuple[list[int], list[float]]:
        tokens = words(text)
        columns: list[int] = [0]
        values: list[float] = [1.0]
        blocks = (
            (word_grams(tokens), self.config.word_weight),
            (char_grams(tokens), self.config.char_weight),
        )
        for grams, weight in blocks:
            counts = Counter(self.vocabulary[g] for g in grams if g in self.vocabulary)
            if not counts:
                continue
            cols = list(counts)
            tfidf = [(1.0 + math.log(counts[c])) * float(self.idf[c]) for c in cols]
            norm = math.sqrt(sum(v * v for v in tfidf))
            columns.extend(cols)
            values.extend(weight * v / norm for v in tfidf)
        return columns, values

    def transform(self, texts: Sequence[str]) -> Csr:
        return Csr.from_rows([self.row(t) for t in texts], self.n_features)

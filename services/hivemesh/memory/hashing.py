"""A deterministic lexical encoder: hashed content words, L2-normalised.

Used when no language service is wanted (embedded runs, tests, benchmarks). It matches memories
by shared content words: "my sister's name is Ana" and "what's my sister's name?" share
``sister`` and ``name``; function words are ignored so they cannot make different facts look alike.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been am do does did
    i me my mine you your yours he him his she her hers it its we us our they them their this that these
    those what which who whom whose when where why how s t d ll re ve m not no so than too very can will
    just about into over please remember recall know tell""".split()  # noqa: SIM905 - a word list reads best as text
)


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def features(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("'s", " "))
    content = [_stem(w) for w in words if w not in _STOPWORDS]
    return content or words or [text.lower()]


class HashingEmbedder:
    def __init__(self, dimensions: int = 384) -> None:
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.encode(text) for text in texts]

    def encode(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for feature in features(text):
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            # The sign bit keeps collisions from always adding up (feature hashing).
            vector[digest % self.dimensions] += 1.0 if digest >> 63 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

"""Labelled utterances in the CLINC150 layout: ``{"train": [[text, intent], ...], "val": [...]}``."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


class DatasetError(ValueError):
    """The data file is missing a split or is not in the expected layout; the message says which."""


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_splits(path: Path) -> dict[str, list[Example]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected an object of splits")
    splits: dict[str, list[Example]] = {}
    for name, rows in raw.items():
        if not isinstance(rows, list):
            continue
        examples = []
        for position, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) for v in row)):
                raise DatasetError(f"{path}: {name}[{position}] is not a [text, intent] pair")
            examples.append(Example(row[0], row[1]))
        splits[name] = examples
    return splits


def require(splits: dict[str, list[Example]], name: str, path: Path) -> list[Example]:
    if name not in splits or not splits[name]:
        raise DatasetError(f"{path}: no {name!r} split (found: {', '.join(sorted(splits)) or 'none'})")
    return splits[name]


def stratified_holdout(
    examples: Sequence[Example], fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(kept, held out): ``fraction`` of every intent held out, at least one when it has two or more."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = np.random.default_rng(seed)
    kept: list[Example] = []
    held: list[Example] = []
    for intent in sorted(by_intent):
        group = by_intent[intent]
        order = rng.permutation(len(group))
        count = max(1, round(fraction * len(group))) if len(group) >= 2 else 0
        held.extend(group[i] for i in order[:count])
        kept.extend(group[i] for i in order[count:])
    return kept, held


# The development split (docs/language.md): per in-scope intent this share of its train + val rows
# (CLINC150: 20 of 120), and of the out-of-scope rows a larger share (100 of 200), so that the
# out-of-scope recall it reports rests on a hundred examples rather than a few dozen.
DEVELOPMENT_IN_SCOPE_SHARE = 1 / 6
DEVELOPMENT_OOS_SHARE = 0.5
DEVELOPMENT_SEED = 19


@dataclass(frozen=True)
class DevelopmentSplit:
    """``train`` and ``val`` without the rows set aside in ``development``; each row keeps its split."""

    train: list[Example]
    val: list[Example]
    development: list[Example]


def development_split(
    train: Sequence[Example], val: Sequence[Example], seed: int = DEVELOPMENT_SEED, oos_label: str = "oos"
) -> DevelopmentSplit:
    """Set aside, from ``train`` and ``val`` pooled, a fixed share of every intent's rows (of
    ``oos_label`` a larger one), chosen by a seeded shuffle of each intent's rows in file order; the
    rest stay in the split they came from. The same data and seed give the same split."""
    pooled = [(example, True) for example in train] + [(example, False) for example in val]
    by_intent: dict[str, list[int]] = defaultdict(list)
    for position, (example, _) in enumerate(pooled):
        by_intent[example.intent].append(position)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for intent in sorted(by_intent):
        rows = by_intent[intent]
        share = DEVELOPMENT_OOS_SHARE if intent == oos_label else DEVELOPMENT_IN_SCOPE_SHARE
        count = round(share * len(rows)) if len(rows) >= 2 else 0
        chosen.update(rows[i] for i in rng.permutation(len(rows))[:count])
    kept_train = [e for i, (e, from_train) in enumerate(pooled) if from_train and i not in chosen]
    kept_val = [e for i, (e, from_train) in enumerate(pooled) if not from_train and i not in chosen]
    development = [pooled[i][0] for i in sorted(chosen)]
    return DevelopmentSplit(kept_train, kept_val, development)

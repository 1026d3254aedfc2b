from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hivemesh.language.cli import main
from hivemesh.language.nlu.dataset import Example, development_split, load_splits
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.router import OOS, Router
from tests.language.nlu_data import write_dataset

CLINC150 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "clinc150" / "train_val.json"


def _rows(intent: str, count: int, prefix: str) -> list[Example]:
    return [Example(f"{prefix} {intent} {i}", intent) for i in range(count)]


def test_the_split_is_stratified_disjoint_and_keeps_each_rows_origin() -> None:
    train = [*_rows("a", 30, "train"), *_rows("b", 30, "train"), *_rows(OOS, 6, "train")]
    val = [*_rows("a", 6, "val"), *_rows("b", 6, "val"), *_rows(OOS, 6, "val")]
    carved = development_split(train, val)
    assert Counter(e.intent for e in carved.development) == {"a": 6, "b": 6, OOS: 6}
    assert len(carved.train) + len(carved.val) + len(carved.development) == len(train) + len(val)
    development = set(carved.development)
    assert not development & set(carved.train)
    assert not development & set(carved.val)
    assert set(carved.train) <= set(train)
    assert set(carved.val) <= set(val)
    # Deterministic for a seed, different for another.
    assert development_split(train, val).development == carved.development
    assert development_split(train, val, seed=1).development != carved.development


@pytest.mark.skipif(not CLINC150.is_file(), reason=f"CLINC150 is not at {CLINC150}")
def test_clinc150_development_split_sizes() -> None:
    splits = load_splits(CLINC150)
    carved = development_split(splits["train"], splits["val"])
    counts = Counter(e.intent for e in carved.development)
    assert counts.pop(OOS) == 100
    assert len(counts) == 150
    assert set(counts.values()) == {20}
    assert (len(carved.train), len(carved.val), len(carved.development)) == (12530, 2570, 3100)


def test_train_can_hold_out_the_development_split_that_eval_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_dataset(tmp_path / "data.json")
    splits = load_splits(data)
    carved = development_split(splits["train"], splits["val"])
    model = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(model), "--hold-out-development"]) == 0
    router = Router.load(model, encoder_loader({}))
    assert "development_held_out" in router.meta.info
    # Calibrated on what is left of val once the development rows are out.
    assert router.meta.info["calibration_examples"] == str(len(carved.val))
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(model), "--split", "development"]) == 0
    captured = capsys.readouterr()
    assert f"development ({sum(e.intent != OOS for e in carved.development)} in scope" in captured.out
    assert "optimistic" not in captured.err
    # A router fitted on every row is warned about when scored on the development split.
    everything = tmp_path / "everything"
    assert main(["train", "--data", str(data), "--out", str(everything)]) == 0
    assert "development_held_out" not in json.loads((everything / "router.json").read_text())["info"]
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(everything), "--split", "development"]) == 0
    assert "optimistic" in capsys.readouterr().err

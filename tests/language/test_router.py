from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hivemesh.language.cli import main
from hivemesh.language.nlu.dataset import DatasetError, Example, load_splits, stratified_holdout
from hivemesh.language.nlu.encoders import HashedLexicalEncoder
from hivemesh.language.nlu.evaluation import auroc, score
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.router import FORMAT_VERSION, OOS, Featurizer, Router, Scored
from hivemesh.language.nlu.sparse import Csr
from hivemesh.language.nlu.training import TrainOptions, _cross_fitted_threshold, choose_threshold, fit_router
from tests.language.nlu_data import TRAIN, VAL, write_dataset


@pytest.fixture(scope="module")
def router() -> Router:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    return fit_router(train, [(t, i) for t, i in VAL])


def test_router_recognises_paraphrases(router: Router) -> None:
    predictions = router.predict(
        ["set a timer for 7 minutes", "will it be windy tomorrow", "add jam to my list"]
    )
    assert [p.intent for p in predictions] == ["set_timer", "weather", "list_add"]
    assert all(not p.out_of_scope and 0.0 < p.confidence <= 1.0 for p in predictions)
    assert predictions[0].alternatives[0].intent != "set_timer"


def test_router_flags_out_of_scope(router: Router) -> None:
    (prediction,) = router.predict(["what is the capital of mongolia"])
    assert prediction.out_of_scope
    assert prediction.intent == OOS
    assert prediction.in_scope_score < router.meta.threshold


def test_train_save_load_understand(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.json")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "model")]) == 0
    loaded = Router.load(tmp_path / "model", encoder_loader({}))
    assert set(loaded.intents) == {"set_timer", "weather", "list_add"}
    texts = ["start a timer for 4 minutes", "who painted the mona lisa"]
    first, second = loaded.predict(texts)
    assert first.intent == "set_timer"
    # Eight calibration examples cannot place a threshold finely, so this out-of-scope text is
    # compared with the in-scope one; the flag itself is tested on the fixture router above.
    assert second.in_scope_score < first.in_scope_score - 0.3
    # The loaded router decides exactly as the one trained in process on the same data.
    rows = [(text, intent) for intent, group in TRAIN.items() for text in group]
    fresh = fit_router(rows, [(t, i) for t, i in VAL])
    assert loaded.meta.threshold == fresh.meta.threshold
    assert [(p.intent, p.out_of_scope) for p in fresh.predict(texts)] == [
        (p.intent, p.out_of_scope) for p in (first, second)
    ]
    assert [p.in_scope_score for p in fresh.predict(texts)] == pytest.approx(
        [first.in_scope_score, second.in_scope_score], abs=1e-5
    )
    assert main(["eval", "--data", str(data), "--model", str(tmp_path / "model")]) == 0


def test_cli_reports_a_missing_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"val": [["hello", "greeting"]]}')
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    assert "no 'train' split" in capsys.readouterr().err


def test_malformed_rows_are_rejected(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"train": [["text only"]]}')
    with pytest.raises(DatasetError, match=r"train\[0\]"):
        load_splits(data)


def test_threshold_rule_balances_accuracy_and_recall() -> None:
    # Two in-scope intents; rows are in-scope probabilities, and here the best one is also the
    # in-scope score the threshold applies to. Out-of-scope rows have flat scores.
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.5, 0.5], [0.515, 0.485]], np.float32)
    gold = ["a", "b", "a", OOS, OOS]
    scored = Scored(probabilities, probabilities.max(axis=1))
    calibration = choose_threshold(scored, gold, ["a", "b"], oos_prior=0.5)
    assert calibration.threshold == pytest.approx(0.52)
    assert calibration.in_scope_accuracy == pytest.approx(1.0)
    assert calibration.oos_recall == pytest.approx(1.0)


def test_threshold_without_oos_examples_keeps_most_in_scope() -> None:
    probabilities = np.linspace(0.3, 0.99, 100, dtype=np.float32)[:, None] * np.array(
        [[1.0, 0.0]], np.float32
    )
    scored = Scored(probabilities, probabilities.max(axis=1))
    calibration = choose_threshold(scored, ["a"] * 100, ["a", "b"])
    assert calibration.rule == "in-scope percentile"
    assert 0.3 < calibration.threshold < 0.35


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 60)
    pairwise = float((pos[:, None] > neg[None, :]).mean())
    assert auroc(pos.tolist(), neg.tolist()) == pytest.approx(pairwise)
    assert auroc([1.0, 1.0], [1.0]) == pytest.approx(0.5)


def test_scores_count_oos_as_a_class(router: Router) -> None:
    texts = ["set a timer for 9 minutes", "who is the king of spain"]
    figures = score(["set_timer", OOS], router.predict(texts))
    assert figures.in_scope_accuracy == 1.0
    assert figures.oos_recall == 1.0
    assert figures.overall_accuracy == 1.0


def test_sparse_products_match_dense() -> None:
    rng = np.random.default_rng(0)
    dense = rng.random((5, 7)).astype(np.float32) * (rng.random((5, 7)) > 0.5)
    dense[:, 0] = 1.0
    csr = Csr.from_dense(dense)
    weights = rng.random((7, 3)).astype(np.float32)
    np.testing.assert_allclose(csr.dot(weights), dense @ weights, rtol=1e-5)
    rows = np.array([3, 1])
    np.testing.assert_allclose(csr.take(rows).dot(weights), dense[rows] @ weights, rtol=1e-5)
    grad = rng.random((5, 3)).astype(np.float32)
    columns, sums = csr.tdot_rows(grad)
    np.testing.assert_allclose(sums, (dense.T @ grad)[columns], rtol=1e-5)
    both = csr.hstack(Csr.from_dense(dense[:, :2]))
    np.testing.assert_allclose(
        both.dot(np.ones((9, 1), np.float32)), (dense.sum(1) + dense[:, :2].sum(1))[:, None], rtol=1e-5
    )


def test_holdout_is_stratified() -> None:
    examples = [Example(f"{i}", intent) for intent in ("a", "b") for i in range(10)]
    kept, held = stratified_holdout(examples, 0.2)
    assert sorted(e.intent for e in held) == ["a", "a", "b", "b"]
    assert len(kept) == 16


def test_an_encoder_without_layers_uses_its_sentence_embedding() -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    hashed = HashedLexicalEncoder(32)
    router = fit_router(train, [], encoder_kind="openai", encoder=hashed)
    assert router.meta.embedding_layers == ()
    assert router.featurizer.n_features == router.featurizer.lexical.n_features + 32
    with pytest.raises(ValueError, match="pool its layers"):
        Featurizer(router.featurizer.lexical, hashed, 2.0, (2, 6))


def test_format_2_routers_still_load(router: Router, tmp_path: Path) -> None:
    router.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "router.json").read_text())
    assert meta["format"] == FORMAT_VERSION
    assert meta["embedding_layers"] == []
    assert meta["encoder_weights"] == ""
    del meta["embedding_layers"]
    (tmp_path / "r" / "router.json").write_text(json.dumps({**meta, "format": 2}))
    loaded = Router.load(tmp_path / "r", encoder_loader({}))
    assert loaded.meta.embedding_layers == ()
    assert [p.intent for p in loaded.predict(["set a timer for 7 minutes"])] == ["set_timer"]
    (tmp_path / "r" / "router.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(ValueError, match="unsupported router format 1"):
        Router.load(tmp_path / "r", encoder_loader({}))


def test_the_calibration_split_is_learned_from_too(router: Router) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    gongs = [
        ("wake me with a gong timer in 9 minutes", "set_timer"),
        ("a gong timer for 4 minutes", "set_timer"),
    ]
    calibration = [*((t, i) for t, i in VAL), *gongs]
    fitted = fit_router(train, calibration)
    assert any("gong" in gram for gram in fitted.featurizer.lexical.vocabulary)
    assert not any("gong" in gram for gram in router.featurizer.lexical.vocabulary)
    assert fitted.meta.info["threshold_rule"].endswith("2-fold cross-fitted")
    assert fitted.meta.info["calibration_examples"] == str(len(calibration))


def test_cross_fitting_scores_each_calibration_example_with_a_router_that_did_not_see_it() -> None:
    known = [(f"text {i}", intent) for i, intent in enumerate(["a", "b", OOS] * 6)]
    intents = ("a", "b")
    n_train = 5
    calls: list[tuple[set[int], set[int]]] = []

    def score_held(fitted: np.ndarray, held: np.ndarray) -> Scored:
        calls.append((set(fitted.tolist()), set(held.tolist())))
        # Every example looks like intent "a" with an in-scope score that grows with its row.
        probabilities = np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (len(held), 1))
        return Scored(probabilities, (held / 100.0).astype(np.float32))

    calibrated = _cross_fitted_threshold(known, n_train, score_held, intents, TrainOptions())
    assert len(calls) == 2
    calibration_rows = set(range(n_train, n_train + len(known)))
    assert set().union(*(held for _, held in calls)) == calibration_rows
    for fitted, held in calls:
        assert not fitted & held
        assert set(range(n_train)) <= fitted
        assert fitted | held == set(range(n_train + len(known)))
        # Stratified: each part holds three examples of each label.
        assert sorted(known[i - n_train][1] for i in held) == sorted(["a", "b", OOS] * 3)
    assert calibrated.rule.endswith("2-fold cross-fitted")


def test_eval_warns_about_splits_the_router_learned_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_dataset(tmp_path / "data.json")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "model")]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(tmp_path / "model"), "--split", "val"]) == 0
    assert "optimistic" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(data.read_text()), "note": "another file"}))
    assert main(["eval", "--data", str(other), "--model", str(tmp_path / "model"), "--split", "val"]) == 0
    assert "optimistic" not in capsys.readouterr().err

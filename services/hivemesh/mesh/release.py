"""What decides a service's answers, served by every hivemesh server as
``hivemesh.release.v1.ReleaseService`` beside its own service (like health).

Each service fills its own fields of the ``ReleasePart`` (the language service its router and
model, the tool service its catalogue version, the planner its prompt version); the build's
version, the deployment revision and the metrics label are the same for every service of a process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import grpc

from hivemesh.common.v1.release_pb2 import ReleasePart
from hivemesh.mesh.config import ReleaseConfig
from hivemesh.release.v1 import release_service_pb2 as pb
from hivemesh.release.v1.release_service_pb2_grpc import (
    ReleaseServiceServicer,
    add_ReleaseServiceServicer_to_server,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ReleaseService"].full_name
GET_RELEASE_PATH = f"/{SERVICE_NAME}/GetRelease"

# Fills a service's own fields of its part; called on every GetRelease, so it must be cheap.
Describe = Callable[[ReleasePart], None]


def part(service: str, release: ReleaseConfig, describe: Describe | None = None) -> ReleasePart:
    result = ReleasePart(
        service=service, version=release.version, revision=release.revision, label=release.label
    )
    if describe is not None:
        describe(result)
    return result


# The response headers of every Health answer of a service whose part reports a runtime (the
# language service), so a probe or ``grpcurl -v ... grpc.health.v1.Health/Check`` shows what the
# replica computes on without a second call.
RUNTIME_HEADERS = (
    "hivemesh-device",
    "hivemesh-models",
    "hivemesh-batch-capacity",
    "hivemesh-heavy-methods",
)


def runtime_headers(described: ReleasePart) -> tuple[tuple[str, str], ...]:
    """``described.runtime`` as metadata (lists comma-separated); none when it reports no runtime."""
    if not described.HasField("runtime"):
        return ()
    runtime = described.runtime
    values = (
        runtime.device,
        ",".join(runtime.models),
        str(runtime.batch_capacity),
        ",".join(runtime.heavy_methods),
    )
    return tuple(zip(RUNTIME_HEADERS, values, strict=True))


def sha256_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


class ReleaseServicer(ReleaseServiceServicer):
    def __init__(self, service: str, release: ReleaseConfig, describe: Describe | None) -> None:
        self._service = service
        self._release = release
        self._describe = describe

    async def GetRelease(  # noqa: N802 - the RPC's name
        self, request: pb.GetReleaseRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetReleaseResponse:
        return pb.GetReleaseResponse(release=part(self._service, self._release, self._describe))


def register(
    server: grpc.aio.Server, service: str, release: ReleaseConfig, describe: Describe | None
) -> None:
    add_ReleaseServiceServicer_to_server(ReleaseServicer(service, release, describe), server)

"""Understanding costs time linear in the text, so no text can starve the language service.

Understand on "1" * 16384 took 17.7 s, about the square of its length, and every other request of
the service waited for it. Now the longest text the contract allows (16384 characters), made of
what made reading slots quadratic, is understood in well under a second, and a second client keeps
getting its answers meanwhile. The second client runs in its own thread (``Probe``): the service
runs on this test's event loop, whose clock stops when the loop is blocked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.mesh.config import Settings
from tests.security.probe import Probe
from tests.support import RunningMesh, credential_metadata, make_settings, start_mesh

if TYPE_CHECKING:
    from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceAsyncStub

# The contract's bound on UnderstandRequest.text (protos/hivemesh/language/v1).
LONGEST = 16384
# Generous for a busy machine; the quadratic reading took 17.7 s at this length.
PROMPT_S = 1.0


def longest(unit: str, tail: str = "", head: str = "") -> str:
    """``head``, then ``unit`` over and over, then ``tail``: LONGEST characters."""
    return (head + unit * (LONGEST // len(unit)))[: LONGEST - len(tail)] + tail


# Each is understood as an intent whose slots are read, and each made that reading quadratic (or,
# for one long run of spaces, worse): the seconds are what each took before on the same machine.
HOSTILE = {
    "digits": "1" * LONGEST,  # the reported case: 7.3 s (17.7 s on a busy machine)
    "one run of spaces": "x" + " " * (LONGEST - 2) + "y",  # cubic in the run: 6.8 s for 1000, hours here
    "commas": longest(", ", " please", head="remember that "),  # 2.0 s
    "dots": longest(". ", " y", head="remember that "),  # 9.3 s
    "hyphens": longest("x-y", " timer", head="set a "),  # 1.7 s
    "places": longest("in x ", "(", head="what time is it "),  # 5.7 s
    "list items": longest(", ", " from my list (", head="remove x"),  # 6.9 s
    "reminder": longest(", ", " y", head="remind me to "),  # 6.6 s
    "timer labels": longest("for x ", "(", head="set a timer "),  # 1.8 s
    # Not slow before, kept as a check of the compound path: 744 requests in one text, 0.06 s.
    "requests": longest("add x to my list; what time is it in Paris? "),
}


@pytest.fixture
async def language(tmp_path: Path) -> AsyncIterator[tuple[LanguageServiceAsyncStub, RunningMesh]]:
    mesh = await start_mesh(make_settings(tmp_path / "data"), services=["language"])
    try:
        yield LanguageServiceStub(mesh.client("language")), mesh
    finally:
        await mesh.stop()


def probe(address: str, settings: Settings) -> Probe:
    def ask(channel: grpc.Channel) -> None:
        reply = LanguageServiceStub(channel).Understand(
            pb.UnderstandRequest(text="convert 5 miles to kilometers"), timeout=60
        )
        assert reply.intent == "unit_conversion"

    return Probe(address, ask, metadata=credential_metadata(settings))


@pytest.mark.parametrize("name", HOSTILE)
async def test_the_longest_text_is_understood_quickly_while_others_are_answered(
    language: tuple[LanguageServiceAsyncStub, RunningMesh], name: str
) -> None:
    stub, mesh = language
    text = HOSTILE[name]
    assert len(text) <= LONGEST
    async with probe(mesh.address("language"), mesh.settings) as other:
        started = time.monotonic()
        reply = await stub.Understand(pb.UnderstandRequest(text=text), timeout=60)
        took = time.monotonic() - started
    assert reply.intent
    assert took < PROMPT_S, f"{name}: {took:.2f}s"
    assert not other.failures
    assert other.took, "the other client got no answer"
    assert other.worst_s < PROMPT_S, f"{name}: another request waited {other.worst_s:.2f}s"

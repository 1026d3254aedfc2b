"""What the fuzz test of every RPC (``test_fuzz_rpcs``) found, one test each, against a real server."""

from __future__ import annotations

import grpc
import pytest

from hivemesh.mesh.config import Settings
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1 import tool_service_pb2_grpc as tool_grpc
from tests.security.errors_harness import serve
from tests.support import rpc_error


@pytest.mark.parametrize("token", ["é", "page\u00a0two", "😀😀😀😀"])
async def test_a_page_token_that_is_not_ascii_names_the_field(settings: Settings, token: str) -> None:
    """ListTools read its page token as base64 and let the ValueError of a non-ASCII one through
    (INTERNAL)."""
    async with serve(settings, ["tool"], "grpc") as served:
        stub = tool_grpc.ToolServiceStub(served.channel("tool"))
        status = await rpc_error(stub.ListTools(tool.ListToolsRequest(page_token=token)))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.field_violations == (("page_token", "is not a token this service returned"),)

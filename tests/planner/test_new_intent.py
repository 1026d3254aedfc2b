"""A new capability end to end with real services: the tip tool (tests/planner/tip.py, the module
docs/tools.md and the README show) and training examples of its intent, and nothing else. The module
is found where a user drops it, among the built-in tools' modules; the router is trained with
`hivemesh nlu train` on the shipped data plus those examples; the planner learns the intent from the
catalogue."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format

import hivemesh.language.slots
import hivemesh.tool.builtins
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.language.cli import main as nlu_main
from hivemesh.language.slots import extract_slots, to_proto
from hivemesh.language.v1.language_service_pb2 import UnderstandResponse
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import acting_as
from hivemesh.mesh.intents import Intent
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer
from hivemesh.planner import strategy
from hivemesh.planner.capabilities import CapabilityCache, phrase
from hivemesh.planner.clients import GrpcTools
from hivemesh.planner.v1 import planner_service_pb2 as pb
from hivemesh.planner.v1.planner_service_pb2_grpc import PlannerServiceStub
from hivemesh.tool.app import build_app
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec
from tests.planner.tip import tip
from tests.support import RunningMesh, make_settings, mesh_minter
from tests.tool.fakes import InMemoryRecords, RecordingScheduler

DATA = Path(hivemesh.language.slots.__file__).parent.parent / "data" / "intents.json"

TIP_TRAIN = [
    "what's a 20% tip on 85 dollars", "how much should I tip on 120", "tip on a 45 dollar bill",
    "calculate the tip for 60 bucks", "what is 15 percent tip on 80", "how much tip for a 200 bill",
    "work out an 18% tip on 64.50", "tip for dinner that cost 92", "add a 10 percent tip to 30",
    "what should I leave as a tip on 75", "gratuity on a 150 check", "how big a tip on 38 dollars",
    "figure out the tip on 55", "20 percent gratuity on 240", "tip calculator 70 dollars",
    "how much do I tip on a 33 dollar meal", "what's the tip on 48 at 22 percent", "tip 25% of 90",
    "what do I owe with tip on 66", "bill is 120 how much tip", "how much is a good tip for 50",
    "split out the tip for a 140 bill", "what tip do I leave on 12.80", "tip amount for 99",
    "total with a 15% tip on 44", "restaurant bill 210 what tip", "how much gratuity on 65",
    "compute the tip for 31 dollars", "what's 18 percent tip on a 57 tab", "tip for a 28 dollar haircut",
    "leave a tip on 82", "what is the tip on a 175 dinner", "tip on 19 euros", "our check was 88 tip please",
    "how much should the tip be on 130", "20% tip on 47", "what's a fair tip on 73",
    "work out the gratuity for 260", "tip and total for 41", "how much to tip the waiter on 96",
    "how much should I tip", "help me with the tip", "what tip should I leave",
]  # fmt: skip
TIP_VAL = [
    "tip on 58 dollars", "what's a 12% tip on 300", "how much gratuity for a 77 bill",
    "figure the tip on 105", "tip for a 36 dollar taxi ride", "how much is a 25 percent tip on 62",
    "tip for our 150 meal", "work out the tip for 23", "total with tip on 49", "what's the tip on 88",
]  # fmt: skip


@pytest.fixture
def router(tmp_path: Path) -> Path:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    data["train"] += [[text, "tip"] for text in TIP_TRAIN]
    data["val"] += [[text, "tip"] for text in TIP_VAL]
    path = tmp_path / "intents-with-tip.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "router"
    assert nlu_main(["train", "--data", str(path), "--out", str(out)]) == 0
    return out


@pytest.fixture
def dropped_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tip.py as a module of the built-in tools' package, as if saved into
    services/hivemesh/tool/builtins/ (the package's search path gains a directory holding it)."""
    folder = tmp_path / "builtins"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "tip.py", folder / "tip.py")
    package = hivemesh.tool.builtins
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    try:
        yield folder / "tip.py"
    finally:
        sys.modules.pop(f"{package.__name__}.tip", None)  # gone with the directory


@pytest.fixture
async def mesh(
    tmp_path: Path, router: Path, dropped_in: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningMesh]:
    monkeypatch.setenv("HIVEMESH_NLU_MODEL", str(router))
    running = RunningMesh(make_settings(tmp_path / "data"), ["memory", "language", "tool", "planner"])
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def run(mesh: RunningMesh, text: str) -> list[TaskEvent]:
    stub = PlannerServiceStub(mesh.client("planner"))
    request = pb.RunTaskRequest(text=text, scope=Scope(user_id="ana", session_id="s1"))
    return [r.event async for r in stub.RunTask(request)]


async def test_a_new_tool_serves_its_intent_with_no_other_change(mesh: RunningMesh) -> None:
    events = await run(mesh, "what's a twenty percent tip on 85 dollars")
    [recognised] = [e.intent_recognized for e in events if e.WhichOneof("kind") == "intent_recognized"]
    assert recognised.intent == "tip"
    [called] = [e.tool_called for e in events if e.WhichOneof("kind") == "tool_called"]
    assert called.tool_name == "tip"
    assert dict(called.arguments) == {"bill": 85, "percent": 20}
    assert events[-1].completed.answer == "A 20% tip is 17.00, 102.00 in all."

    events = await run(mesh, "how much should I tip on a 40 dollar bill")
    assert events[-1].completed.answer == "A 15% tip is 6.00, 46.00 in all."  # the tool's default

    events = await run(mesh, "how much should I tip")
    [asked] = [e.input_requested for e in events if e.WhichOneof("kind") == "input_requested"]
    assert (asked.missing, asked.question) == ("bill", "How much is the bill?")


MCP_SERVER = Path(__file__).parents[1] / "tool" / "mcp_server.py"


def understood(text: str, intent: str) -> UnderstandResponse:
    now = datetime.now(UTC)
    return UnderstandResponse(
        text=text, intent=intent, confidence=0.9, slots=to_proto(extract_slots(text, intent, now=now))
    )


async def test_an_mcp_tool_serves_the_intent_its_server_configuration_declares(
    settings: Settings, tmp_path: Path
) -> None:
    declared = {
        "add": [
            {
                "intent": "sum",
                "arguments": {
                    "a": {"slot": "number", "question": "Which numbers?"},
                    "b": {"slot": "number_2", "question": "And the other one?"},
                },
                "reply": "{a} plus {b} is {result}.",
            }
        ],
        # Names an argument the tool does not take: offered by name only, no intent.
        "echo": [{"intent": "shout", "arguments": {"words": {"slot": "number"}}}],
    }
    mcp = {"command": sys.executable, "args": [str(MCP_SERVER)], "timeout_s": 5, "intents": declared}
    servers = tmp_path / "mcp.json"
    servers.write_text(json.dumps({"servers": {"demo": mcp}}), encoding="utf-8")
    app = build_app(
        settings,
        ChannelFactory(settings),
        ToolConfig(mcp_servers=servers),
        records=InMemoryRecords(),
        scheduler=RecordingScheduler(),
    )
    server = MeshServer(app, settings.server, 0, Metrics())
    await server.start()
    channels = ChannelFactory(settings, {"tool": f"127.0.0.1:{server.port}"})
    try:
        tools = GrpcTools(channels, WaitingBulkhead("tool", 8), catalogue_max_age_s=0)
        with acting_as(mesh_minter(settings).mint("default", "ana")):
            tables = CapabilityCache().tables(await until_listed(tools, "demo.add"))
            assert tables.served[Intent("sum")].tool == "demo.add"
            assert "shout" not in tables.served
            [step] = strategy.plan(understood("add 2 and 40", "sum"), tables).steps
            assert (step.tool, step.arguments) == ("demo.add", {"a": 2, "b": 40})
            response = await tools.invoke(
                step.tool, step.arguments, idempotency_key="", scope=Scope(), task_id=""
            )
            result = json_format.MessageToDict(response.result)
            assert phrase(step.reply, step.arguments, result) == "2 plus 40 is 42."
            asked = strategy.plan(understood("add 2", "sum"), tables).question
            assert asked is not None
            assert (asked.missing, asked.reply) == ("b", "And the other one?")
    finally:
        await channels.close()
        await server.stop(0.5)


async def until_listed(tools: GrpcTools, name: str) -> list[ToolSpec]:
    """The catalogue once the MCP server's tools are in it (the server starts beside the service)."""
    deadline = time.monotonic() + 15
    while True:
        specs = await tools.list_tools()
        if name in {spec.name for spec in specs}:
            return specs
        assert time.monotonic() < deadline, f"{name} never listed"
        await asyncio.sleep(0.05)


def test_the_docs_show_the_tip_module_this_test_runs() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "tools.md").read_text(encoding="utf-8")
    shown = docs.split("# services/hivemesh/tool/builtins/tip.py\n", 1)[1].split("```", 1)[0]
    module = (Path(__file__).parent / "tip.py").read_text(encoding="utf-8")
    assert module.split('"""\n\n', 1)[1] == shown
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    in_readme = readme.split("```python\n# services/hivemesh/tool/builtins/tip.py\n", 1)[1].split("```", 1)[0]
    assert in_readme == shown


def test_the_dropped_in_module_is_a_built_in_tool(dropped_in: Path) -> None:
    [found] = [item for item in hivemesh.tool.builtins.discover() if item.spec.name == "tip"]
    assert found.spec.intents[0].intent == "tip"
    assert sys.modules["hivemesh.tool.builtins.tip"].__file__ == str(dropped_in)
    assert found.spec == tip.spec

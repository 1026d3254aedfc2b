"""The console in a cluster: spans the services export with the standard OpenTelemetry OTLP/HTTP
exporter reach the edge's receiver (``POST /v1/traces``) and make a task's waterfall; the
receiver's limits (size, garbage, content type, token, a bounded store); and the tool figures read
from a tool service's Prometheus ``/metrics`` in another process."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from hivemesh.console.receiver import SpanStore, spans_of_request
from hivemesh.console.traces import MAX_SPANS, TASK_ATTRIBUTE
from hivemesh.edge.app import Edge
from hivemesh.edge.config import EdgeConfig
from hivemesh.mesh.config import ConfigError
from tests.console.test_api import tool_figures
from tests.support import make_settings

TOKEN = "spans-only"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Up:
    def __init__(self, url: str, metrics_url: str) -> None:
        self.url = url
        self.metrics_url = metrics_url


@pytest.fixture(scope="module")
def up_exporting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``hivemesh up`` with no span file, its spans exported over OTLP/HTTP (protobuf, the
    exporter of the ``otlp`` extra, with the receiver's token) to its own edge's receiver, and its
    Prometheus ``/metrics`` served."""
    directory = tmp_path_factory.mktemp("otlp")
    output = directory / "up.log"
    edge_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "HIVEMESH_DATA_DIR": str(directory / "data"),
        "HIVEMESH_METRICS_PORT": str(metrics_port),
        "HIVEMESH_EDGE_PORT": str(edge_port),
        "HIVEMESH_CONSOLE_OTLP": "on",
        "HIVEMESH_CONSOLE_OTLP_TOKEN": TOKEN,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{edge_port}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"Authorization=Bearer%20{TOKEN}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        **{f"HIVEMESH_{s.upper()}_PORT": "0" for s in ("gateway", "planner", "language", "memory", "tool")},
    }
    for name in ("HIVEMESH_AUTH", "HIVEMESH_TRACE_FILE", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):
        env.pop(name, None)
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hivemesh.cli", "up"], env=env, stderr=sink, stdout=sink
        )
    try:
        deadline = time.monotonic() + 90
        while f"edge serving HTTP on 127.0.0.1:{edge_port}" not in output.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hivemesh up did not start:\n{output.read_text()}")
            time.sleep(0.1)
        yield Up(f"http://127.0.0.1:{edge_port}", f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_task(api: httpx.Client, text: str) -> str:
    made = api.post("/tasks", json={"text": text, "user": "tracer"})
    assert made.status_code == 201, made.text
    task_id: str = made.json()["task"]["task_id"]
    ended = api.get(f"/tasks/{task_id}/events")
    assert "event: end" in ended.text
    return task_id


def services_of(spans: list[dict[str, Any]]) -> set[str]:
    found = set()
    for span in spans:
        named = span["attributes"].get("rpc.service") or span.get("service") or ""
        for service in ("gateway", "planner", "language", "memory", "tool", "edge"):
            if service in str(named).lower():
                found.add(service)
    return found


def test_a_tasks_waterfall_is_made_of_the_spans_exported_to_the_edge(up_exporting: Up) -> None:
    with httpx.Client(base_url=f"{up_exporting.url}/console/api", timeout=30) as api:
        task_id = run_task(api, "what is 6 * 7?")
        # The exporter sends its batches in the background: read until the run's span (which ends
        # last) and those of the services it called are there.
        deadline = time.monotonic() + 60
        while True:
            found = api.get(f"/tasks/{task_id}/trace").json()
            assert found["available"] is True, found
            assert found["sources"] == ["otlp"]
            ran = any(
                s["name"] == "invoke_agent hivemesh" and s["attributes"].get(TASK_ATTRIBUTE) == task_id
                for s in found["spans"]
            )
            if ran and {"gateway", "language", "memory", "tool"} <= services_of(found["spans"]):
                break
            assert time.monotonic() < deadline, services_of(found["spans"])
            time.sleep(0.2)
        spans = found["spans"]
        (trace_id,) = {s["trace_id"] for s in spans}
        assert [s["start_ns"] for s in spans] == sorted(s["start_ns"] for s in spans)
        ids = {s["span_id"] for s in spans}
        assert sum(1 for s in spans if s["parent_id"] not in ids) >= 1
        assert any(s["kind"] == "SERVER" for s in spans)
        assert len(trace_id) == 32
        # Another task's waterfall holds none of these spans.
        other = run_task(api, "what is 2 + 2?")
        assert not ids & {s["span_id"] for s in api.get(f"/tasks/{other}/trace").json()["spans"]}
        # Spans without the token are refused, with the real exporter's content type.
        refused = httpx.post(
            f"{up_exporting.url}/v1/traces",
            content=ExportTraceServiceRequest().SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert refused.status_code == 401
        assert "HIVEMESH_CONSOLE_OTLP_TOKEN" in refused.json()["error"]["message"]


async def test_the_tool_figures_are_read_from_the_tool_services_metrics(
    up_exporting: Up, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=f"{up_exporting.url}/console/api", timeout=30) as api:
        made = await api.post("/tasks", json={"text": "what is 9 * 9?", "user": "counter"})
        ended = await api.get(f"/tasks/{made.json()['task']['task_id']}/events")
        assert "event: end" in ended.text
        own = tool_figures((await api.get("/metrics")).json(), "calculator")
    assert own[0] >= 1
    # A console in another process, reading the same tool service twice (as two replicas).
    config = EdgeConfig(port=0, tool_metrics_urls=(up_exporting.metrics_url, up_exporting.metrics_url))
    edge = Edge(make_settings(tmp_path / "data"), config, metrics=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=edge.app), base_url="http://localhost"
    ) as http:
        figures = (await http.get("/console/api/metrics")).json()
    assert figures["available"] is True
    assert figures["tools_only"] is True
    assert figures["sources"] == 2
    assert figures["unreachable"] == []
    calls, observed, seconds = tool_figures(figures, "calculator")
    assert (calls, observed) == (own[0] * 2, own[1] * 2)
    assert seconds == pytest.approx(own[2] * 2)
    # A replica that does not answer is named, and the others still count.
    config = EdgeConfig(
        port=0, tool_metrics_urls=(up_exporting.metrics_url, f"http://127.0.0.1:{free_port()}/metrics")
    )
    edge = Edge(make_settings(tmp_path / "data2"), config, metrics=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=edge.app), base_url="http://localhost"
    ) as http:
        figures = (await http.get("/console/api/metrics")).json()
    assert figures["sources"] == 1
    assert len(figures["unreachable"]) == 1
    assert tool_figures(figures, "calculator")[0] == own[0]


def request_of(
    *spans: tuple[bytes, bytes, str | None], service: str = "hivemesh-tool"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    scope = resource.scope_spans.add()
    for trace_id, span_id, task in spans:
        span = scope.spans.add(trace_id=trace_id, span_id=span_id, name="work", kind=2)
        span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
        if task is not None:
            span.attributes.append(KeyValue(key=TASK_ATTRIBUTE, value=AnyValue(string_value=task)))
    return request


@pytest.fixture
def receiving(tmp_path: Path) -> Edge:
    config = EdgeConfig(port=0, max_body_bytes=4096, console_otlp=True, console_otlp_token=TOKEN)
    return Edge(make_settings(tmp_path / "data"), config, metrics=None)


async def post(edge: Edge, body: bytes, **headers: str) -> httpx.Response:
    sent = {"content-type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}", **headers}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=edge.app), base_url="http://localhost"
    ) as http:
        return await http.post("/v1/traces", content=body, headers=sent)


async def test_the_receiver_keeps_what_it_is_sent_and_refuses_what_is_not_spans(receiving: Edge) -> None:
    assert receiving.received is not None
    good = request_of((b"\x01" * 16, b"\x02" * 8, "task-1"), (b"\x01" * 16, b"\x03" * 8, None))
    answered = await post(receiving, good.SerializeToString())
    assert answered.status_code == 200, answered.text
    assert answered.headers["content-type"] == "application/x-protobuf"
    kept = receiving.received.trace_of("task-1")
    assert [(s["span_id"], s["service"], s["kind"]) for s in kept] == [
        ("02" * 8, "hivemesh-tool", "SERVER"),
        ("03" * 8, "hivemesh-tool", "SERVER"),
    ]
    zipped = await post(receiving, gzip.compress(good.SerializeToString()), **{"content-encoding": "gzip"})
    assert zipped.status_code == 200

    garbage = await post(receiving, b"not a protobuf \xff\xfe")
    assert garbage.status_code == 400
    assert "ExportTraceServiceRequest" in garbage.json()["error"]["message"]
    bad_ids = await post(receiving, request_of((b"\x01" * 3, b"\x02" * 8, None)).SerializeToString())
    assert bad_ids.status_code == 400
    too_large = await post(receiving, b"\x00" * 5000)
    assert too_large.status_code == 413
    bomb = await post(receiving, gzip.compress(b"\x00" * 100_000), **{"content-encoding": "gzip"})
    assert bomb.status_code == 413
    assert "4096" in bomb.json()["error"]["message"]
    as_json = await post(receiving, b"{}", **{"content-type": "application/json"})
    assert as_json.status_code == 415
    stranger = await post(receiving, good.SerializeToString(), authorization="Bearer guess")
    assert stranger.status_code == 401
    assert len(receiving.received) == 4  # the two spans, twice (plain and gzip)


def spans(trace: int, count: int, task: str | None = None) -> list[dict[str, Any]]:
    request = request_of(
        *(
            (trace.to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), task if i == 0 else None)
            for i in range(count)
        )
    )
    return spans_of_request(request.SerializeToString())


def test_the_store_is_bounded_by_traces_spans_and_age() -> None:
    store = SpanStore(max_traces=3, max_total_spans=10, max_age_s=60)
    for trace in range(1, 6):
        store.add(spans(trace, 2, f"task-{trace}"), now=0)
    assert store.traces == 3
    assert len(store) == 6
    assert store.trace_of("task-1", now=0) == []
    assert store.trace_of("task-2", now=0) == []
    assert len(store.trace_of("task-5", now=0)) == 2
    # Too many spans in all: the oldest traces go.
    store.add(spans(6, 8, "task-6"), now=0)
    assert len(store) <= 10
    assert store.trace_of("task-3", now=0) == []
    assert len(store.trace_of("task-6", now=0)) == 8
    # Old traces go.
    store.add(spans(7, 1, "task-7"), now=100)
    assert store.trace_of("task-6", now=100) == []
    assert len(store.trace_of("task-7", now=100)) == 1
    assert store.traces == 1
    # One trace holds MAX_SPANS at most; the rest are counted as dropped.
    big = SpanStore()
    big.add(spans(8, MAX_SPANS + 5, "task-8"), now=0)
    assert len(big.trace_of("task-8", now=0)) == MAX_SPANS
    assert big.dropped == 5


def test_the_settings_are_checked() -> None:
    assert EdgeConfig.from_env({"HIVEMESH_CONSOLE_OTLP": "on"}).console_otlp is True
    assert EdgeConfig.from_env({}).console_otlp is False
    with pytest.raises(ConfigError, match="HIVEMESH_CONSOLE_OTLP"):
        EdgeConfig.from_env({"HIVEMESH_CONSOLE_OTLP": "maybe"})
    urls = EdgeConfig.from_env(
        {"HIVEMESH_CONSOLE_TOOL_METRICS_URL": "http://a:9464/metrics, http://b:9464/metrics"}
    )
    assert urls.tool_metrics_urls == ("http://a:9464/metrics", "http://b:9464/metrics")
    with pytest.raises(ConfigError, match="HIVEMESH_CONSOLE_TOOL_METRICS_URL"):
        EdgeConfig.from_env({"HIVEMESH_CONSOLE_TOOL_METRICS_URL": "tool:9464"})

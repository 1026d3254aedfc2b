"""The floor: a hivemesh task's hops through bare grpc.aio, with handlers that do nothing.

A hivemesh task goes client -> gateway (ExecuteTask, a server stream) -> queue -> planner, which
calls memory (GetContext), language (Understand), tool (InvokeTool), language (Generate, a server
stream) and memory (AppendTurns), and the task's events stream back to the client; the planner
lists the tools (ListTools) once and keeps the catalogue. The floor makes the same calls between
five processes, one per service, and streams eight events back (as many as a calculation's). Where
hivemesh queues the task, the floor's gateway calls the planner (a server stream), so a floor task
is seven RPCs to a calculation's six. Messages are raw bytes: no protobuf, validation,
interceptors, queue, log or storage. Whatever a topology costs beyond the floor is hivemesh's own.

One process: ``python -m benchmarks.throughput.floor <service> --port P --metrics-port M
[--address service=host:port ...]``. RPCs are counted under hivemesh's metric name, so the
benchmark reads every topology with the same scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, start_http_server

SERVICES = ("gateway", "planner", "language", "memory", "tool")
# Leaves first, so each process finds its downstreams listening.
START_ORDER = ("tool", "memory", "language", "planner", "gateway")
EXECUTE = "/floor.Gateway/Execute"

Unary = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]
Streaming = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], AsyncIterator[bytes]]


class _Counted:
    """Counts each handled call in ``grpc_server_handled_total``, as hivemesh's servers do."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self._service = f"floor.{service.capitalize()}"
        self._calls = Counter(
            "grpc_server_handled",
            "RPCs handled.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )

    def unary(self, method: str, behaviour: Unary) -> grpc.RpcMethodHandler[bytes, bytes]:
        counter = self._calls.labels(self._service, method, "OK")

        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            reply = await behaviour(request, context)
            counter.inc()
            return reply

        return grpc.unary_unary_rpc_method_handler(handle)

    def streaming(self, method: str, behaviour: Streaming) -> grpc.RpcMethodHandler[bytes, bytes]:
        counter = self._calls.labels(self._service, method, "OK")

        async def handle(
            request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            async for reply in behaviour(request, context):
                yield reply
            counter.inc()

        return grpc.unary_stream_rpc_method_handler(handle)

    def service(
        self, handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]]
    ) -> grpc.GenericRpcHandler[bytes, bytes]:
        return grpc.method_handlers_generic_handler(self._service, handlers)


async def _echo(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request[:64]


def _leaf(name: str, counted: _Counted) -> grpc.GenericRpcHandler[bytes, bytes]:
    if name == "memory":
        return counted.service(
            {
                "GetContext": counted.unary("GetContext", _echo),
                "AppendTurns": counted.unary("AppendTurns", _echo),
            }
        )
    if name == "tool":
        return counted.service(
            {"ListTools": counted.unary("ListTools", _echo), "InvokeTool": counted.unary("InvokeTool", _echo)}
        )

    async def generate(
        request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        yield b"answer: " + request[:32]

    return counted.service(
        {
            "Understand": counted.unary("Understand", _echo),
            "Generate": counted.streaming("Generate", generate),
        }
    )


def _planner(
    channels: dict[str, grpc.aio.Channel], counted: _Counted
) -> grpc.GenericRpcHandler[bytes, bytes]:
    def unary(service: str, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        return channels[service].unary_unary(f"/floor.{service.capitalize()}/{method}", None, None)

    get_context, append_turns = unary("memory", "GetContext"), unary("memory", "AppendTurns")
    list_tools, invoke_tool = unary("tool", "ListTools"), unary("tool", "InvokeTool")
    understand = unary("language", "Understand")
    generate: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channels["language"].unary_stream(
        "/floor.Language/Generate", None, None
    )

    catalogue: list[bytes] = []

    async def run(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        yield b"submitted " + request[:64]
        yield b"working"
        await get_context(request)
        if not catalogue:
            catalogue.append(await list_tools(b""))
        intent: bytes = await understand(request)
        yield b"intent " + intent[:16]
        yield b"step 1"
        yield b"calling tool"
        result: bytes = await invoke_tool(request)
        yield b"result " + result[:16]
        answer = b""
        async for chunk in generate(request):
            answer += chunk
            yield b"delta " + chunk
        await append_turns(answer)
        yield b"completed " + answer

    return counted.service({"Run": counted.streaming("Run", run)})


def _gateway(
    channels: dict[str, grpc.aio.Channel], counted: _Counted
) -> grpc.GenericRpcHandler[bytes, bytes]:
    run: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channels["planner"].unary_stream(
        "/floor.Planner/Run", None, None
    )

    async def execute(
        request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for event in run(request):
            yield event

    return counted.service({"Execute": counted.streaming("Execute", execute)})


async def serve(name: str, port: int, metrics_port: int, addresses: dict[str, str]) -> None:
    registry = CollectorRegistry()
    counted = _Counted(name, registry)
    channels = {service: grpc.aio.insecure_channel(address) for service, address in addresses.items()}
    if name == "gateway":
        handler = _gateway(channels, counted)
    elif name == "planner":
        handler = _planner(channels, counted)
    else:
        handler = _leaf(name, counted)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise OSError(f"cannot listen on 127.0.0.1:{port}")
    start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1.0)
    for channel in channels.values():
        await channel.close(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput.floor", description=__doc__)
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--address", action="append", default=[], help="service=host:port of a downstream")
    args = parser.parse_args(argv)
    addresses = dict(item.split("=", 1) for item in args.address)
    try:
        asyncio.run(serve(args.service, args.port, args.metrics_port, addresses))
    except OSError as exc:
        print(f"floor {args.service}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

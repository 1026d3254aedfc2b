"""The ``hivemesh`` command: run the mesh, send it requests, inspect tasks, benchmark and evaluate it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.metadata
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from hivemesh import terminal
from hivemesh.client import AnswerJoiner, HivemeshClient, credentials_from_env
from hivemesh.common.v1.task_pb2 import Task, TaskEvent, TaskState
from hivemesh.console.app import CONSOLE_PATH
from hivemesh.edge.app import Edge, EdgeServer, a2a_available, mcp_available
from hivemesh.edge.config import EdgeConfig
from hivemesh.loadgen import Closed, Load, Open, Request, gateway_sender, run_load
from hivemesh.mesh.certs import make_certificates
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import SERVICES, TLS_FILES, ConfigError, EnvReader, Settings
from hivemesh.mesh.credentials import CREDENTIAL_HEADER, minter_for
from hivemesh.mesh.extras import missing_extra
from hivemesh.mesh.launch import START_ORDER, build_servers
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import Serving, run_until_signal
from hivemesh.mesh.status import details_of
from hivemesh.mesh.telemetry import setup_logging, setup_tracing, shutdown_tracing

EXIT_FAILED = 1
EXIT_USAGE = 2
# A credential printed for an operator lives at most this long.
MAX_TOKEN_TTL_S = 24 * 3600.0
# The ids of a scope (hivemesh.common.v1.Scope's patterns).
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
EXIT_INPUT_REQUIRED = 3
EXIT_UNAVAILABLE = 4
# How long a command waits for the gateway to accept its connection before saying it is not there.
CONNECT_TIMEOUT_S = 1.5
GATEWAY_ADDRESS_HELP = "gateway host:port (default: HIVEMESH_GATEWAY_ADDR or localhost:50051)"


def _default_user() -> str:
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):
        return "local"


# ---- serving -------------------------------------------------------------------------------------


async def _serve(
    services: Sequence[str], settings: Settings, process_name: str, edge: EdgeConfig | None = None
) -> None:
    setup_tracing(process_name, settings.tracing)
    metrics = Metrics(settings.server.release.label)
    channels = ChannelFactory(settings)
    # Leaves first: the planner starts taking tasks only once the services it calls are serving.
    grpc_servers = build_servers([s for s in START_ORDER if s in services], settings, channels, metrics)
    servers: list[Serving] = list(grpc_servers)
    if edge is not None and edge.port is not None:
        # After the gateway, which its doors call.
        servers.append(
            EdgeServer(
                # The services of this process, if any, feed the console's service map.
                Edge(settings, edge, metrics=metrics if grpc_servers else None),
                settings.server.host,
                edge.port,
                grace_s=settings.server.grace_period_s,
                shutdown_delay_s=settings.server.shutdown_delay_s,
                local_gateway=next((s for s in grpc_servers if s.app.name == "gateway"), None),
                local_services={s.app.name: s for s in grpc_servers},
            )
        )
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, settings.server.host)
    try:
        await run_until_signal(servers, settings.server.grace_period_s)
    finally:
        await channels.close()
        shutdown_tracing()


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    # Zero set-up on a laptop: without an explicit HIVEMESH_AUTH the embedded mesh runs without
    # credentials, and the gateway says so loudly when it starts.
    os.environ.setdefault("HIVEMESH_AUTH", "none")
    # Every caller is then the one anonymous tenant, whose rate limit would cap the whole mesh at
    # 50 calls/s: unless set, the embedded mesh runs without one.
    if os.environ["HIVEMESH_AUTH"] == "none":
        os.environ.setdefault("HIVEMESH_RATE_LIMIT", "0")
    edge = EdgeConfig.from_env()
    print(f"hivemesh: data in {settings.data_dir}", file=sys.stderr)
    for name in SERVICES:
        print(f"hivemesh: {name:<8} on {settings.server.host}:{settings.ports[name]}", file=sys.stderr)
    if edge.port is not None:
        print(f"hivemesh: {'edge':<8} on {_edge_doors(settings.server.host, edge)}", file=sys.stderr)
        console = f"http://{_edge_host(settings.server.host)}:{edge.port}{CONSOLE_PATH}/"
        print(f"hivemesh: {'console':<8} on {console}  (open it in a browser)", file=sys.stderr)
    print('hivemesh: try  hivemesh run "what is 12 * (3 + 4)?"   (Ctrl-C stops the mesh)', file=sys.stderr)
    asyncio.run(_serve(SERVICES, settings, "hivemesh", edge))
    return 0


def _edge_host(host: str) -> str:
    """The name to print for the edge's address: ``localhost`` for a loopback or wildcard bind."""
    return "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104 - comparison only


def _edge_doors(host: str, edge: EdgeConfig) -> str:
    name = _edge_host(host)
    base = f"http://{name}:{edge.port}"
    mcp = f"MCP {base}/mcp" if mcp_available() else "MCP off: pip install 'hivemesh[edge]'"
    if not a2a_available():
        return f"{base}  (OpenAI {base}/v1, {mcp}, A2A off: pip install 'hivemesh[edge]')"
    a2a = f"A2A {base}/a2a"
    if edge.a2a_grpc_port:
        a2a += f" and gRPC {name}:{edge.a2a_grpc_port}"
    return f"{base}  (OpenAI {base}/v1, {mcp}, {a2a})"


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.service == "edge":
        edge = EdgeConfig.from_env()
        if edge.port is None:
            print("hivemesh serve edge: HIVEMESH_EDGE_PORT is off", file=sys.stderr)
            return EXIT_USAGE
        asyncio.run(_serve([], settings, "hivemesh-edge", edge))
        return 0
    asyncio.run(_serve([args.service], settings, f"hivemesh-{args.service}"))
    return 0


def cmd_mcp_stdio(args: argparse.Namespace, settings: Settings) -> int:
    if not mcp_available():
        print("hivemesh mcp-stdio: needs the mcp package: pip install 'hivemesh[edge]'", file=sys.stderr)
        return EXIT_USAGE
    from hivemesh.edge.mcp_door import serve_stdio  # noqa: PLC0415 - mcp is an optional extra

    asyncio.run(serve_stdio(settings, EdgeConfig.from_env(), args.address))
    return 0


# ---- talking to the gateway ----------------------------------------------------------------------


def _describe(event: TaskEvent) -> str | None:
    kind = event.WhichOneof("kind")
    if kind == "submitted":
        return f"submitted   {event.submitted.input_text!r}"
    if kind == "state_changed":
        name = TaskState.Name(event.state_changed.state).removeprefix("TASK_STATE_").lower()
        return f"{name:<11} {event.state_changed.reason}"
    if kind == "intent_recognized":
        r = event.intent_recognized
        scope = " (out of scope)" if r.out_of_scope else ""
        return f"understood  {r.intent} ({r.confidence:.2f}){scope}"
    if kind == "step_started":
        return f"step {event.step_started.step:<6} {event.step_started.name}"
    if kind == "tool_called":
        args = json.dumps(json_format.MessageToDict(event.tool_called.arguments), ensure_ascii=False)
        return f"calling     {event.tool_called.tool_name} {args}"
    if kind == "tool_result":
        res = event.tool_result
        outcome = f"error {res.error.reason}: {res.error.message}" if res.HasField("error") else res.display
        return f"result      {res.tool_name} -> {outcome}"
    if kind == "notice":
        return f"notice      {event.notice.code}: {event.notice.message}"
    if kind == "input_requested":
        return f"question    {event.input_requested.question}"
    if kind == "input_received":
        return f"answered    {event.input_received.text!r}"
    if kind == "completed":
        return "completed"
    if kind == "failed":
        return f"failed      {event.failed.error.reason}: {event.failed.error.message}"
    if kind == "canceled":
        return f"canceled    {event.canceled.reason}"
    return None  # answer deltas are joined into one answer (see _watch)


def _attempt_started(answer: AnswerJoiner, event: TaskEvent) -> str | None:
    """Feed ``event`` to ``answer``; when it is the first of a later attempt than one already seen,
    a line saying so."""
    before = answer.attempt
    discarded = answer.add(event)
    if before in (0, answer.attempt):
        return None
    dropped = "; earlier partial answer discarded" if discarded else ""
    return f"attempt {answer.attempt} started{dropped}"


# The style of an event's line on a terminal, by kind.
_EVENT_STYLES = {
    "tool_called": "cyan",
    "tool_result": "cyan",
    "notice": "yellow",
    "input_requested": "magenta",
    "completed": "green",
    "failed": "red",
    "canceled": "yellow",
}


def _event_line(event: TaskEvent) -> str:
    """``[seq] a<attempt> what happened``: the attempt column is blank for events outside a run."""
    kind = event.WhichOneof("kind") or ""
    attempt = f"a{event.attempt}" if event.attempt else ""
    return f"[{event.sequence:>3}] {attempt:<3} {_describe(event) or kind}"


async def _watch(client: HivemeshClient, task_id: str, after: int, *, as_json: bool) -> None:
    """Print a task's events as they come (each with the attempt it belongs to, tool calls with
    their results), then its answer once: the completed answer, or when the watch ended before
    it, the joined deltas of the current attempt. ``--json`` prints every event as it is (deltas
    included, each with its attempt)."""
    answer = AnswerJoiner()
    completed = ""
    ended = ""
    async for event in client.follow(task_id, after):
        if as_json:
            print(json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None))
            continue
        started = _attempt_started(answer, event)
        kind = event.WhichOneof("kind")
        if started is not None:
            terminal.line(f"      {started}", "bold")
        if kind != "answer_delta":
            terminal.line(_event_line(event), _EVENT_STYLES.get(kind or "", ""))
            ended = kind or ""
        if kind == "completed":
            completed = event.completed.answer
    text = completed or answer.text.strip()
    if text and not as_json:
        terminal.line(f"{'answer' if ended == 'completed' else 'partial answer'}: {text}", "bold")


def _print_json(message: Task) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def _exit_code(task: Task) -> int:
    if task.state == TaskState.TASK_STATE_COMPLETED:
        return 0
    if task.state == TaskState.TASK_STATE_INPUT_REQUIRED:
        return EXIT_INPUT_REQUIRED
    return EXIT_FAILED


class GatewayUnreachable(Exception):
    """Nothing answered at the gateway's address within the connect timeout."""

    def __init__(self, address: str, timeout_s: float) -> None:
        super().__init__(address, timeout_s)
        self.address = address
        self.timeout_s = timeout_s


@contextlib.asynccontextmanager
async def _gateway(args: argparse.Namespace, settings: Settings) -> AsyncIterator[HivemeshClient]:
    """A client of the gateway, connected: a gateway that is down is reported within
    ``--connect-timeout`` rather than at the end of the first call's timeout."""
    address = args.address or settings.addresses["gateway"]
    async with HivemeshClient(
        address, metadata=credentials_from_env(), timeout_s=args.timeout, tls=settings.tls
    ) as client:
        try:
            await client.ready(args.connect_timeout)
        except TimeoutError:
            raise GatewayUnreachable(address, args.connect_timeout) from None
        yield client


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with _gateway(args, settings) as client:
        if args.task:
            task = await client.answer(args.task, args.text)
            after = task.last_sequence - 1
        else:
            task, existing = await client.submit(
                args.text,
                user_id=args.user,
                session_id=args.session,
                tenant_id=args.tenant,
                deadline_s=args.deadline,
                request_id=args.request_id,
                time_zone=args.time_zone,
            )
            after = 0
            if existing:
                print(
                    f"(request {args.request_id} was already submitted as task {task.task_id})",
                    file=sys.stderr,
                )
        if not args.quiet:
            print(f"task {task.task_id}", file=sys.stderr)
        answer = AnswerJoiner()
        async for event in client.follow(task.task_id, after):
            line = _describe(event)
            started = _attempt_started(answer, event)
            if args.quiet:
                continue
            if started is not None:
                terminal.line(f"        {started}", "bold", stream=sys.stderr)
            if line is not None:
                kind = event.WhichOneof("kind") or ""
                terminal.line(f"  {_event_line(event)}", _EVENT_STYLES.get(kind, ""), stream=sys.stderr)
        final = await client.get(task.task_id)
    if args.json:
        _print_json(final)
    elif final.state == TaskState.TASK_STATE_COMPLETED:
        print(final.answer)
    elif final.state == TaskState.TASK_STATE_INPUT_REQUIRED:
        print(final.answer)
        print(f'answer with: hivemesh run --task {final.task_id} "<your answer>"', file=sys.stderr)
    else:
        state = TaskState.Name(final.state).removeprefix("TASK_STATE_")
        print(f"task {state}: {final.error.message or final.error.reason}", file=sys.stderr)
    return _exit_code(final)


async def _task(args: argparse.Namespace, settings: Settings) -> int:
    async with _gateway(args, settings) as client:
        if args.action == "list":
            tasks, token = await client.list(
                page_size=args.limit, page_token=args.page_token, user_id=args.user
            )
            if args.json:
                print(
                    json.dumps(
                        {
                            "tasks": [
                                json_format.MessageToDict(t, preserving_proto_field_name=True) for t in tasks
                            ],
                            "next_page_token": token,
                        },
                        indent=2,
                    )
                )
            else:
                terminal.table(
                    ["TASK", "STATE", "CREATED (UTC)", "USER", "INPUT"],
                    [
                        [t.task_id, _state(t), _time(t.create_time), t.scope.user_id, _short(t.input_text)]
                        for t in tasks
                    ],
                )
                if token:
                    print(f"(more: --page-token {token})", file=sys.stderr)
            return 0
        if not args.task_id:
            print(f"hivemesh task {args.action}: a task id is required", file=sys.stderr)
            return EXIT_USAGE
        if args.action == "get":
            task = await client.get(args.task_id)
        elif args.action == "cancel":
            task = await client.cancel(args.task_id, args.reason)
        else:
            await _watch(client, args.task_id, args.after, as_json=args.json)
            return 0
    if args.json:
        _print_json(task)
    else:
        _print_summary(task)
    return 0


def _state(task: Task) -> str:
    return TaskState.Name(task.state).removeprefix("TASK_STATE_")


def _time(stamp: Timestamp) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if stamp.seconds or stamp.nanos else "-"


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _print_summary(task: Task) -> None:
    """``task get`` for a person: one aligned line per field that has a value."""
    state = _state(task)
    scope = task.scope
    fields = [
        ("task", task.task_id, ""),
        ("state", state, terminal.STATE_STYLES.get(state, "")),
        ("input", task.input_text, ""),
    ]
    if task.answer:
        label = "question" if task.state == TaskState.TASK_STATE_INPUT_REQUIRED else "answer"
        fields.append((label, task.answer, ""))
    if task.HasField("error") and (task.error.reason or task.error.message):
        retry = " (retryable)" if task.error.retryable else ""
        fields.append(("error", f"{task.error.reason}: {task.error.message}{retry}", "red"))
    fields += [
        (
            "scope",
            f"tenant {scope.tenant_id or '-'}, user {scope.user_id or '-'}, "
            f"session {scope.session_id or '-'}",
            "",
        ),
        ("attempts", str(task.attempts), ""),
        ("events", str(task.last_sequence), ""),
        ("created", f"{_time(task.create_time)} UTC", ""),
        ("updated", f"{_time(task.update_time)} UTC", ""),
    ]
    if task.request_id:
        fields.append(("request id", task.request_id, ""))
    terminal.summary(fields)


async def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from hivemesh.tasks.config import TaskConfig  # noqa: PLC0415 - only this command opens the store directly
    from hivemesh.tasks.system import TaskSystem  # noqa: PLC0415

    tasks = TaskSystem(settings, TaskConfig.from_env())
    await tasks.start()
    try:
        result = await tasks.log.verify(args.task_id)
    finally:
        await tasks.stop(0)
    if result.ok:
        print(f"task {result.task_id}: {result.events} events, hash chain intact")
        return 0
    print(f"task {result.task_id}: broken at event {result.broken_at}: {result.problem}", file=sys.stderr)
    return EXIT_FAILED


# ---- benchmark -----------------------------------------------------------------------------------


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    prompts = args.prompt or ["what is 12 * (3 + 4)?"]
    run = uuid.uuid4().hex[:8]
    load: Load = Open(args.rate) if args.rate is not None else Closed(args.clients or 8)

    def workload(number: int) -> Request:
        # Each task starts a conversation of its own, as one of 16 users of this run.
        return Request(
            prompts[number % len(prompts)], user_id=f"bench-{run}-{number % 16}", session_id=f"s{number}"
        )

    # A gateway that is down is reported before the load starts (exit 4, as ``run`` does); one
    # that stops answering during the load counts its failures as errors, like any other.
    async with _gateway(args, settings) as client:
        report = await run_load(
            gateway_sender(client, timeout_s=args.timeout),
            workload,
            load,
            args.duration,
            drain_s=args.timeout,
            progress=None if args.quiet else sys.stderr,
            label="bench ",
        )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        errors = f"errors {report.failed}" + (f" {report.errors}" if report.errors else "")
        print(
            f"{report.completed} tasks in {report.seconds:.2f}s ({load.describe()}): "
            f"{report.tasks_per_s:.1f} tasks/s, p50 {report.p50_ms:.1f} ms, p95 {report.p95_ms:.1f} ms, "
            f"p99 {report.p99_ms:.1f} ms, {errors}"
        )
        if isinstance(load, Open):
            print(
                f"at most {report.max_in_flight} in flight; tasks started up to "
                f"{report.start_lag_p99_ms:.1f} ms late (p99, included in the latencies)"
            )
    return 0 if report.completed else EXIT_FAILED


# ---- development certificates --------------------------------------------------------------------


def cmd_certs(args: argparse.Namespace) -> int:
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    try:
        issued = make_certificates(
            args.out, services, namespace=args.namespace or None, days=args.days, force=args.force
        )
    except (FileExistsError, ValueError) as exc:
        print(f"hivemesh certs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"hivemesh: a development CA in {issued.ca} (key {issued.ca_key}), valid {args.days} days")
    for service, (cert, key) in issued.services.items():
        print(f"hivemesh: {service:<8} {cert}  {key}")
    service, files = next(iter(issued.services.items()))
    print(f"Set for each service its own certificate and key ({service} shown):")
    for variable, path in zip(TLS_FILES, (*files, issued.ca), strict=True):
        print(f"  export {variable}={path.resolve()}")
    print("A client of the gateway (hivemesh run) needs only HIVEMESH_TLS_CA.")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a mesh credential as one metadata line (for grpcurl -H against an internal service)."""
    try:
        ttl_s = EnvReader({"--ttl": args.ttl}).seconds("--ttl", 300.0, minimum=1.0)
    except ConfigError as exc:
        print(f"hivemesh token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ttl_s > MAX_TOKEN_TTL_S:
        print(f"hivemesh token: --ttl is at most {MAX_TOKEN_TTL_S / 3600:g}h", file=sys.stderr)
        return EXIT_USAGE
    minter = minter_for(settings)
    if minter is None:
        print("hivemesh token: the mesh credential is off (HIVEMESH_MESH_AUTH=off)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{CREDENTIAL_HEADER}: {minter.mint(args.tenant, args.user, args.task or '', ttl_s=ttl_s)}")
    return 0


# ---- entry point ---------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("hivemesh")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _identifier(text: str) -> str:
    if not _IDENTIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an id (letters, digits and . _ : @ -, starting with a letter or digit)"
        )
    return text


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _serving_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``up``, ``serve`` and ``mcp-stdio``: the commands that run servers."""
    sub.add_parser("up", help="run all five services in one process, each on its own port, and the HTTP edge")
    serve = sub.add_parser("serve", help="run one service, or the HTTP edge (OpenAI and MCP doors)")
    serve.add_argument("service", choices=[*SERVICES, "edge"])
    stdio = sub.add_parser(
        "mcp-stdio",
        help="serve the MCP door over stdin/stdout (for an MCP client that starts it)",
        description="Serves hivemesh's tools and ask_agent to an MCP client over stdio, calling the "
        "gateway with HIVEMESH_API_KEY or HIVEMESH_TOKEN, as HIVEMESH_USER (default 'default').",
    )
    stdio.add_argument("--address", help=GATEWAY_ADDRESS_HELP)


def _credential_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``certs`` and ``token``: the development CA and certificates, and a mesh credential."""
    certs = sub.add_parser(
        "certs",
        help="make a development CA and a TLS certificate per service",
        description="Writes ca.pem and ca-key.pem, and <service>.pem and <service>-key.pem for each "
        "service, signed by that CA, valid as server and client, for the names the service is dialled "
        "by: its name (and <service>.<namespace>.svc names with --namespace), localhost and 127.0.0.1. "
        "Keys are readable by their owner only. Existing files are not overwritten without --force.",
    )
    certs.add_argument("--out", type=Path, required=True, help="directory to write to (made if missing)")
    certs.add_argument(
        "--services",
        default=",".join(SERVICES),
        help=f"comma-separated services to issue for (default {','.join(SERVICES)})",
    )
    certs.add_argument("--namespace", help="Kubernetes namespace the services run in: adds its names")
    certs.add_argument("--days", type=_positive_int, default=365, help="validity in days (default 365)")
    certs.add_argument(
        "--force", action="store_true", help="replace existing files (the CA too: reissue every service)"
    )

    token = sub.add_parser(
        "token",
        help="print a short-lived mesh credential for calling an internal service (grpcurl -H)",
        description="Mints a credential with the mesh's signing key (HIVEMESH_MESH_SIGNING_KEY, else the "
        "data directory's) that lets calls to planner, language, memory and tool act for one tenant "
        "and user, and prints it as one 'name: value' metadata line.",
    )
    token.add_argument("--tenant", required=True, type=_identifier, help="tenant the calls act for")
    token.add_argument("--user", required=True, type=_identifier, help="user the calls act for")
    token.add_argument("--task", type=_identifier, help="task the calls belong to (optional)")
    token.add_argument(
        "--ttl", default="5m", help="lifetime, such as 90s, 5m or 1h (default 5m, at most 24h)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivemesh", description="A production runtime for AI agents.")
    parser.add_argument("--version", action="version", version=f"hivemesh {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    _serving_commands(sub)

    def client_flags(
        p: argparse.ArgumentParser,
        timeout_s: float = 30.0,
        timeout_help: str = "seconds for each unary call",
    ) -> None:
        p.add_argument("--address", help=GATEWAY_ADDRESS_HELP)
        p.add_argument("--timeout", type=float, default=timeout_s, help=timeout_help)
        p.add_argument(
            "--connect-timeout",
            type=_positive_float,
            default=CONNECT_TIMEOUT_S,
            help=f"seconds to wait for the gateway to accept the connection (default {CONNECT_TIMEOUT_S:g})",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")

    run = sub.add_parser("run", help="send a request in plain words and print the answer")
    run.add_argument("text")
    run.add_argument(
        "--user",
        default=os.environ.get("HIVEMESH_USER") or _default_user(),
        help="user id (default: $HIVEMESH_USER or your login name)",
    )
    run.add_argument(
        "--session",
        default=os.environ.get("HIVEMESH_SESSION", "default"),
        help="conversation id (default: $HIVEMESH_SESSION or 'default'); a new one starts a new conversation",
    )
    run.add_argument(
        "--tenant", default="", help="tenant id (default: the credentials' tenant, else 'default')"
    )
    run.add_argument(
        "--task", help="answer the question of this task (INPUT_REQUIRED) instead of starting a new one"
    )
    run.add_argument(
        "--deadline", type=float, help="seconds the task may take (default: HIVEMESH_TASK_DEADLINE)"
    )
    run.add_argument(
        "--time-zone",
        default=os.environ.get("HIVEMESH_TIME_ZONE", ""),
        help="your IANA time zone, e.g. Europe/Paris, remembered for your later requests "
        "(default: $HIVEMESH_TIME_ZONE, else the one remembered, else the server's)",
    )
    run.add_argument("--request-id", default=uuid.uuid4().hex, help="idempotency key (default: random)")
    run.add_argument("--quiet", "-q", action="store_true", help="do not print events on stderr")
    client_flags(run)

    task = sub.add_parser("task", help="list, inspect, follow, cancel or verify tasks")
    task.add_argument("action", choices=["list", "get", "watch", "cancel", "verify"])
    task.add_argument("task_id", nargs="?")
    task.add_argument("--after", type=int, default=0, help="watch: resume after this sequence")
    task.add_argument("--reason", default="", help="cancel: why")
    task.add_argument("--limit", type=int, default=20, help="list: page size")
    task.add_argument("--page-token", default="", help="list: continue from a previous page")
    task.add_argument("--user", default="", help="list: only this user's tasks")
    client_flags(task)

    bench = sub.add_parser(
        "bench",
        help="tasks through the gateway for T seconds: tasks/s and p50/p95/p99 latency",
        description="Runs tasks through the gateway, each with one ExecuteTask stream, and prints "
        "tasks/s, p50/p95/p99 latency and errors; a progress line goes to stderr about once a second. "
        "Closed loop (--clients): each client starts a task when its previous one ends. Open loop "
        "(--rate): tasks are due at fixed times whatever the answers, and latency runs from the time "
        "a task was due. Exits 1 when no task completed.",
    )
    load = bench.add_mutually_exclusive_group()
    load.add_argument(
        "--clients", "-n", type=_positive_int, help="closed loop: concurrent clients (default 8)"
    )
    load.add_argument("--rate", "-r", type=_positive_float, help="open loop: tasks started per second")
    bench.add_argument("--duration", "-t", type=_positive_float, default=10.0, help="seconds of load")
    bench.add_argument("--prompt", action="append", help="request text (repeatable; default: a calculation)")
    bench.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")
    client_flags(bench, 60.0, "seconds each task may take from its start (default 60)")

    _credential_commands(sub)

    # Commands with parsers of their own (main hands them their arguments before this parser runs);
    # listed here so that hivemesh --help shows them.
    for name, text in (
        ("keys", "create, list and revoke the gateway's API keys (see hivemesh keys --help)"),
        ("dlq", "list, inspect, replay and purge dead letters (see hivemesh dlq --help)"),
        ("nlu", "train and evaluate intent routers (see hivemesh nlu --help)"),
    ):
        sub.add_parser(name, help=text, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
    sub.add_parser(
        "eval",
        help="run a case suite against a mesh and gate it on a baseline (see hivemesh eval --help)",
        add_help=False,
    ).add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except ImportError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        print(f"hivemesh: {missing}", file=sys.stderr)
        return EXIT_USAGE


def _main(arguments: list[str]) -> int:
    if arguments[:1] in (["keys"], ["dlq"]):
        from hivemesh.gateway.admin_cli import main as admin_main  # noqa: PLC0415 - only when asked

        return admin_main(arguments)
    if arguments[:1] == ["nlu"]:
        from hivemesh.language.cli import main as nlu_main  # noqa: PLC0415 - heavy imports only when asked

        return nlu_main(arguments[1:])
    if arguments[:1] == ["eval"]:
        from hivemesh.evaluation.cli import main as eval_main  # noqa: PLC0415 - only when asked

        return eval_main(arguments[1:])
    args = _parser().parse_args(arguments)
    if args.command == "certs":
        return cmd_certs(args)
    try:
        settings = Settings.from_env()
        if args.command == "token":
            return cmd_token(args, settings)
    except ConfigError as exc:
        print(f"hivemesh: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level, json_lines=settings.log_json)
    if args.command not in ("up", "serve"):
        logging.getLogger().setLevel(logging.WARNING)
    try:
        if args.command in ("up", "serve"):
            try:
                return cmd_up(args, settings) if args.command == "up" else cmd_serve(args, settings)
            except OSError as exc:  # a port taken, a certificate unreadable
                print(f"hivemesh: {exc}", file=sys.stderr)
                return EXIT_FAILED
        if args.command == "mcp-stdio":
            return cmd_mcp_stdio(args, settings)
        if args.command == "run":
            return asyncio.run(_run(args, settings))
        if args.command == "task" and args.action == "verify":
            if not args.task_id:
                print("hivemesh task verify: a task id is required", file=sys.stderr)
                return EXIT_USAGE
            return asyncio.run(_verify(args, settings))
        if args.command == "task":
            return asyncio.run(_task(args, settings))
        if args.command == "bench":
            return asyncio.run(_bench(args, settings))
    except GatewayUnreachable as exc:
        print(
            f"hivemesh: cannot reach the gateway at {exc.address}: no connection within "
            f"{exc.timeout_s:g}s (is it running? `hivemesh up` starts one; --address or "
            "HIVEMESH_GATEWAY_ADDR says where it is)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    except grpc.aio.AioRpcError as exc:
        details = details_of(exc)
        reason = f" ({details.reason})" if details.reason else ""
        print(f"hivemesh: {details.code.name}{reason}: {details.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE if details.code == grpc.StatusCode.UNAVAILABLE else EXIT_FAILED
    except ConfigError as exc:
        print(f"hivemesh: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

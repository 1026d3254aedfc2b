"""``hivemesh keys`` and ``hivemesh dlq``: operator commands that work on the stores directly.

They use the same configuration as the services (``HIVEMESH_DATABASE_URL``, ``HIVEMESH_REDIS_URL``,
``HIVEMESH_DATA_DIR``), so run them where the gateway's configuration is.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path

from google.protobuf import json_format

from hivemesh import terminal
from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.gateway.app import key_store
from hivemesh.gateway.keys import OPERATOR, ROLES
from hivemesh.gateway.service import Caller, DeadTask, Gateway
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.errors import HivemeshError
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem

EXIT_FAILED = 1
EXIT_USAGE = 2


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _keys_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivemesh keys", description="Manage the gateway's API keys.")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="issue a key for a tenant (the key is shown once)")
    create.add_argument("--tenant", required=True, help="the tenant the key acts as")
    create.add_argument("--name", default="", help="a label, e.g. who or what uses the key")
    create.add_argument(
        "--role",
        choices=ROLES,
        default=OPERATOR,
        help="operator: every call; viewer: only calls that change nothing (the console's read-only role)",
    )
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    revoke = sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", help="the key id (the part after hmk_)")
    return parser


def _dlq_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hivemesh dlq", description="Inspect and drain the dead-letter queue."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("--tenant", help="only this tenant's dead letters")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = sub.add_parser("show", help="one dead letter with its task's events")
    show.add_argument("task_id")
    replay = sub.add_parser("replay", help="put a dead letter back on the queue, its history kept")
    replay.add_argument("task_id")
    purge = sub.add_parser("purge", help="drop dead letters for good (the tasks stay FAILED)")
    target = purge.add_mutually_exclusive_group(required=True)
    target.add_argument("task_id", nargs="?")
    target.add_argument("--all", action="store_true", help="every dead letter (of --tenant, if given)")
    purge.add_argument("--tenant", help="with --all: only this tenant's dead letters")
    return parser


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    store = key_store(settings)
    await store.start()
    try:
        if args.action == "create":
            key, text = await store.create(args.tenant, name=args.name, role=args.role)
            print(text)
            print(
                f"key {key.key_id} ({key.role}) for tenant {key.tenant_id}: shown once, store it now "
                "(send it as the x-api-key header, or set HIVEMESH_API_KEY for the hivemesh command)",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            keys = await store.list(args.tenant)
            if args.json:
                print(json.dumps([k.__dict__ for k in keys], indent=2))
                return 0
            terminal.table(
                ["KEY", "TENANT", "ROLE", "STATE", "CREATED (UTC)", "NAME"],
                [
                    [
                        k.key_id,
                        k.tenant_id,
                        k.role,
                        f"revoked {_when(k.revoke_time)}" if k.revoked else "active",
                        _when(k.create_time),
                        k.name,
                    ]
                    for k in keys
                ],
            )
            if not keys:
                print("no keys", file=sys.stderr)
            return 0
        if await store.revoke(args.key_id):
            print(f"key {args.key_id} revoked")
            return 0
        print(f"hivemesh keys revoke: no active key {args.key_id}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.stop(0)


def _line(found: DeadTask) -> str:
    return (
        f"{found.task.task_id}  {found.task.scope.tenant_id:<16} deliveries={found.letter.delivery_count}  "
        f"queued {_when(found.letter.enqueued_at)}  {found.letter.last_error}"
    )


async def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    tasks = TaskSystem(settings, replace(TaskConfig.from_env(), sweep_interval_s=0))
    await tasks.start()
    gateway = Gateway(tasks, settings)
    operator = Caller(tenant_id=getattr(args, "tenant", None))
    try:
        if args.action == "list":
            found, _ = await gateway.dead_letters(operator, page_size=args.limit, page_token="")
            if args.json:
                print(
                    json.dumps(
                        [
                            {
                                "task": json_format.MessageToDict(f.task, preserving_proto_field_name=True),
                                "delivery_count": f.letter.delivery_count,
                                "last_error": f.letter.last_error,
                            }
                            for f in found
                        ],
                        indent=2,
                    )
                )
            else:
                terminal.table(
                    ["TASK", "TENANT", "DELIVERIES", "QUEUED (UTC)", "LAST ERROR"],
                    [
                        [
                            f.task.task_id,
                            f.task.scope.tenant_id,
                            str(f.letter.delivery_count),
                            _when(f.letter.enqueued_at),
                            f.letter.last_error,
                        ]
                        for f in found
                    ],
                )
                if not found:
                    print("the dead-letter queue is empty", file=sys.stderr)
            return 0
        if args.action == "show":
            item = await gateway.dead_letter(operator, args.task_id)
            print(_line(item))
            print(f"  input: {item.task.input_text!r}")
            for event in await tasks.log.read(args.task_id, 0, limit=10_000):
                kind = event.WhichOneof("kind")
                detail = (
                    json_format.MessageToJson(getattr(event, kind or "notice"), indent=None) if kind else ""
                )
                print(f"  [{event.sequence:>3}] {kind} {detail}")
            return 0
        if args.action == "replay":
            task = await gateway.replay(operator, args.task_id)
            print(f"task {task.task_id} is {TaskState.Name(task.state).removeprefix('TASK_STATE_')}")
            return 0
        purged = await gateway.purge(operator, None if args.all else args.task_id)
        print(f"purged {purged} dead letter{'s' if purged != 1 else ''}")
        return 0
    except HivemeshError as exc:
        print(f"hivemesh dlq {args.action}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await tasks.stop(0)


def main(argv: list[str]) -> int:
    """``argv`` starts with "keys" or "dlq"."""
    command, rest = argv[0], argv[1:]
    args = (_keys_parser() if command == "keys" else _dlq_parser()).parse_args(rest)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"hivemesh: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Without a shared database the stores are files in the data directory: one that is not there
    # is a wrong HIVEMESH_DATA_DIR (or a gateway never started), not an empty store to create.
    creates = command == "keys" and args.action == "create"
    store = "gateway.db" if command == "keys" else "tasks.db"
    if settings.database_url is None and not creates:
        problem = _missing_store(settings.data_dir, store)
        if problem:
            print(f"hivemesh {command} {args.action}: {problem}", file=sys.stderr)
            return EXIT_FAILED
    if command == "keys":
        return asyncio.run(_keys(args, settings))
    return asyncio.run(_dlq(args, settings))


def _missing_store(data_dir: Path, store: str) -> str:
    """Why the store file ``store`` of ``data_dir`` cannot be read ("" when it can)."""
    where = "set HIVEMESH_DATA_DIR to the gateway's, or HIVEMESH_DATABASE_URL to its database"
    if not data_dir.is_dir():
        return f"the data directory {data_dir} does not exist ({where})"
    if not (data_dir / store).is_file():
        return f"there is no store in {data_dir} ({store} is missing; {where})"
    return ""

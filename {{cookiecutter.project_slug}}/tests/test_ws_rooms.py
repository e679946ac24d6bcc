"""The rooms protocol on ``/ws``, against the real server with real websocket clients.

"Nothing arrived" is checked with a ping: the server answers in order, so a
``pong`` as the next event proves that no earlier event was queued.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.live_server import Server, start_server, stop_server
from tests.support.raw_websocket import (
    OPCODE_CLOSE,
    close_code,
    close_frame,
    frame,
    open_websocket,
    read_frame,
    read_until_close,
)
from tests.support.ws_client import CLIENT_MESSAGE, RoomsClient

# An event whose data nests past what the server takes.
DEEP_EVENT = (
    '{"type": "message", "room": "lobby", "event": "e", "data": ' + "[" * 40 + "]" * 40 + "}"
)


def assert_nothing_pending(client: RoomsClient) -> None:
    client.send(type="ping")
    assert client.receive() == {"type": "pong"}


def test_members_see_each_others_messages_and_presence(server: Server) -> None:
    with RoomsClient(server.ws_url) as alice, RoomsClient(server.ws_url) as bob:
        assert alice.join("lobby")["members"] == 1
        joined = bob.join("lobby")
        position = {"epoch": joined["epoch"], "offset": joined["offset"]}
        assert joined == {"type": "joined", "room": "lobby", "members": 2, **position}
        assert alice.expect("presence") == {
            "type": "presence",
            "room": "lobby",
            "members": 2,
            "id": bob.id,
            "event": "join",
        }
        alice.send(type="message", room="lobby", text="hi bob")
        for client in (alice, bob):
            event = client.expect("message")
            assert (event["room"], event["from"], event["text"]) == ("lobby", alice.id, "hi bob")
        bob.send(type="message", room="lobby", text="hi alice ✓")
        assert alice.expect("message")["text"] == bob.expect("message")["text"] == "hi alice ✓"
        bob.send(type="leave", room="lobby")
        assert bob.expect("left") == {"type": "left", "room": "lobby"}
        assert alice.expect("presence")["members"] == 1


def test_other_rooms_see_nothing(server: Server) -> None:
    with (
        RoomsClient(server.ws_url) as alice,
        RoomsClient(server.ws_url) as carol,
        RoomsClient(server.ws_url) as dave,
    ):
        alice.join("kitchen")
        carol.join("garden")
        alice.send(type="message", room="kitchen", text="secret")
        assert alice.expect("message")["text"] == "secret"
        assert_nothing_pending(carol)  # in another room
        assert_nothing_pending(dave)  # in no room


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"room": "lobby"}', "invalid_message"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "join"}', "invalid_room"),
        ('{"type": "join", "room": "no spaces"}', "invalid_room"),
        (json.dumps({"type": "join", "room": "x" * 65}), "invalid_room"),
        ('{"type": "message", "room": "lobby"}', "invalid_text"),
        (json.dumps({"type": "message", "room": "lobby", "text": "x" * 4097}), "invalid_text"),
        ('{"type": "message", "room": "lobby", "text": "hi"}', "not_joined"),
        ('{"type": "leave", "room": "lobby"}', "not_joined"),
        ('{"type": "message", "room": "lobby", "event": "no spaces"}', "invalid_event"),
        ('{"type": "message", "room": "lobby", "event": "e", "data": NaN}', "invalid_event"),
        ('{"type": "message", "room": "lobby", "event": "e", "data": "\\udc00"}', "invalid_event"),
        (DEEP_EVENT, "invalid_event"),
    ],
)
def test_invalid_input_gets_an_error_and_the_connection_stays_usable(
    server: Server, message: str, code: str
) -> None:
    with RoomsClient(server.ws_url) as client:
        client.ws.send(message)
        error = client.expect("error")
        assert error["code"] == code
        assert error["detail"]
        assert client.join("lobby")["members"] >= 1
        assert_nothing_pending(client)


def test_too_many_rooms_is_refused(server: Server) -> None:
    with RoomsClient(server.ws_url) as client:
        for n in range(16):
            client.join(f"room-{n}")
        client.send(type="join", room="one-too-many")
        assert client.expect("error")["code"] == "too_many_rooms"
        client.send(type="leave", room="room-0")
        client.expect("left")
        assert client.join("one-too-many")["members"] == 1


def test_binary_frame_is_closed_with_1003(server: Server) -> None:
    with RoomsClient(server.ws_url) as client:
        client.ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1003


@pytest.mark.parametrize("how", ["close", "drop"])
def test_rooms_are_cleaned_up_however_a_connection_ends(server: Server, how: str) -> None:
    with RoomsClient(server.ws_url) as alice:
        alice.join("cleanup")
        bob = RoomsClient(server.ws_url)
        bob.join("cleanup")
        bob.join("cleanup-2")
        alice.expect("presence")
        if how == "close":
            bob.ws.close()
        else:
            bob.ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame
        assert alice.expect("presence") == {
            "type": "presence",
            "room": "cleanup",
            "members": 1,
            "id": bob.id,
            "event": "leave",
        }
        bob.close()
        with RoomsClient(server.ws_url) as carol:
            assert carol.join("cleanup-2")["members"] == 1


def test_a_member_that_only_receives_is_counted_out_when_it_vanishes(server: Server) -> None:
    """Noticed while messages stream to it: every connection always has a receive
    pending on the server, so it needs no read-ahead buffer to notice a peer that
    left while it was only sending to it."""
    with RoomsClient(server.ws_url) as alice:
        alice.join("quiet")
        bob = RoomsClient(server.ws_url)
        bob.join("quiet")
        alice.expect("presence")
        for n in range(16):  # within the rate limit's burst
            alice.send(type="message", room="quiet", text=str(n))
            if n == 8:
                bob.ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame
        events = [alice.receive() for _ in range(17)]  # her 16 messages and bob's leave
        assert [e["text"] for e in events if e["type"] == "message"] == [str(n) for n in range(16)]
        assert [e for e in events if e["type"] == "presence"] == [
            {"type": "presence", "room": "quiet", "members": 1, "id": bob.id, "event": "leave"}
        ]
        bob.close()


def test_a_member_that_closes_while_a_room_streams_to_it_gets_nothing_after_the_close(
    server: Server,
) -> None:
    """A broadcast writes to each member at once when it can: never to one whose
    closing handshake has begun, so the server's close is the last frame it sends."""
    sock = open_websocket(server.host, server.port, "/ws")
    with sock, RoomsClient(server.ws_url) as alice:
        alice.join("closing")
        sock.sendall(frame(json.dumps({"type": "join", "room": "closing"}).encode()))
        while json.loads(read_frame(sock)[1])["type"] != "joined":
            pass
        for n in range(30):  # within the rate limit's burst
            alice.send(type="message", room="closing", text=str(n))
            if n == 10:
                sock.sendall(close_frame(1000))
        frames = []
        while (received := read_frame(sock))[0] != OPCODE_CLOSE:
            frames.append(json.loads(received[1]))
        assert close_code(received[1]) == 1000
        assert sock.recv(1) == b""  # nothing after the close: the server hung up
        texts = [int(f["text"]) for f in frames if f["type"] == "message"]
        assert texts == list(range(len(texts)))  # in order, none lost before the close
        events = [alice.receive() for _ in range(32)]  # the join, her 30 messages, the leave
        assert [e["event"] for e in events if e["type"] == "presence"] == ["join", "leave"]


def test_client_messages_in_the_readme_match_the_schema() -> None:
    for message in (
        {"type": "join", "room": "lobby"},
        {"type": "leave", "room": "lobby"},
        {"type": "message", "room": "lobby", "text": "hi"},
        {"type": "ping"},
    ):
        CLIENT_MESSAGE.validate(message)


@pytest.fixture
def small_outbox_server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Server]:
    # The floods sent here test the outboxes, not the rate limit: lift it.
    limits = {"OUTBOX_SIZE": "16", "RATE_LIMIT": "1000000", "RATE_BURST": "1000000"}
    running = start_server(tmp_path, {**server_env, **limits})
    try:
        yield running
    finally:
        stop_server(running)


@pytest.mark.slow  # a server of its own
def test_a_burst_bigger_than_an_outbox_reaches_readers_that_keep_reading(
    small_outbox_server: Server,
) -> None:
    server, count = small_outbox_server, 500  # the outboxes hold 16 frames
    with RoomsClient(server.ws_url) as sender, RoomsClient(server.ws_url) as reader:
        sender.join("burst")
        reader.join("burst")
        sender.expect("presence")
        texts: dict[str, list[str]] = {sender.id: [], reader.id: []}

        def drain(client: RoomsClient) -> None:
            while len(texts[client.id]) < count:
                event = client.receive(timeout=30)
                if event["type"] == "message":
                    texts[client.id].append(event["text"])

        threads = [threading.Thread(target=drain, args=(c,)) for c in (sender, reader)]
        for thread in threads:
            thread.start()
        for n in range(count):  # as fast as the socket takes them, no waiting for echoes
            sender.send(type="message", room="burst", text=str(n))
        for thread in threads:
            thread.join(timeout=60)
        expected = [str(n) for n in range(count)]
        assert texts == {sender.id: expected, reader.id: expected}


@pytest.mark.slow  # a server of its own
def test_a_reader_that_never_reads_is_cut_off_while_others_keep_receiving(
    small_outbox_server: Server,
) -> None:
    server = small_outbox_server
    # ~12 MB to each member: more than the kernel buffers towards the stuck one hold.
    count, window, text = 3000, 8, "x" * 4000
    with RoomsClient(server.ws_url) as sender, RoomsClient(server.ws_url) as reader:
        stuck = open_websocket(server.host, server.port, "/ws", receive_buffer=4096)
        stuck.sendall(frame(b'{"type":"join","room":"flood"}'))
        sender.join("flood")
        reader.join("flood")
        sender.expect("presence")

        received = {sender.id: 0, reader.id: 0}
        leaves: list[dict[str, object]] = []
        progress = threading.Condition()

        def drain(client: RoomsClient) -> None:
            while received[client.id] < count:
                event = client.receive(timeout=30)
                if event["type"] == "message":
                    with progress:
                        received[client.id] += 1
                        progress.notify_all()
                elif event["type"] == "presence" and event["event"] == "leave":
                    leaves.append(event)

        def everyone_has(at_least: int) -> Callable[[], bool]:
            return lambda: min(received.values()) >= at_least

        threads = [threading.Thread(target=drain, args=(c,)) for c in (sender, reader)]
        for thread in threads:
            thread.start()
        for n in range(count):
            # A fast but well-behaved room: at most `window` messages in flight to
            # the readers that read, so only the one that stops reading falls behind.
            with progress:
                assert progress.wait_for(everyone_has(n - window), 30)
            sender.send(type="message", room="flood", text=text)
        for thread in threads:
            thread.join(timeout=60)

        assert received == {sender.id: count, reader.id: count}
        assert [event["members"] for event in leaves] == [2, 2]  # both saw the stuck one go
        assert read_until_close(stuck) in (1008, None)
        stuck.close()


def test_an_app_event_reaches_every_member_unchanged(server: Server) -> None:
    data = {"shape": "circle", "at": [10, 20.5], "tags": None, "label": "ünï ✓", "n": 2**40}
    with RoomsClient(server.ws_url) as alice, RoomsClient(server.ws_url) as bob:
        alice.join("canvas-events")
        bob.join("canvas-events")
        alice.expect("presence")
        alice.send(type="message", room="canvas-events", event="shape.add", data=data, id="e1")
        # The sender's ack and its copy may come in either order: with several processes
        # the copy goes round through the broker.
        for_alice = {event["type"]: event for event in (alice.receive(), alice.receive())}
        assert for_alice["ack"]["id"] == "e1"
        for event in (for_alice["message"], bob.expect("message")):
            assert (event["from"], event["event"], event["data"]) == (alice.id, "shape.add", data)
            assert "text" not in event

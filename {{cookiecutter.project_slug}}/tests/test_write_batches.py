"""A connection's frames of one event-loop step leave in one write, in order, when the step ends.

The batches are the server's own ({% if cookiecutter.server == "asgi-uvicorn" %}``uvicorn_websocket.BATCHES``, on a real asyncio loop{% else %}``gevent_websocket.BATCHES``, on gevent's real hub{% endif %});
the connections record what they would write.
"""

from __future__ import annotations

{% if cookiecutter.server == "asgi-uvicorn" -%}
import asyncio
from collections.abc import Callable

from {{ cookiecutter.package_name }}.uvicorn_websocket import BATCHES
{%- else -%}
from collections.abc import Callable

import gevent

from {{ cookiecutter.package_name }}.gevent_websocket import BATCHES
{%- endif %}
from {{ cookiecutter.package_name }}.write_batches import WriteBatches


class Recorder:
    """A connection that records each write of what it gathered."""

    def __init__(self) -> None:
        self.pending: list[bytes] | None = None
        self.writes: list[bytes] = []

    def write_pending(self) -> None:
        pending, self.pending = self.pending, None
        if pending:
            self.writes.append(b"".join(pending))

{% if cookiecutter.server == "asgi-uvicorn" %}
def in_two_steps(first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run ``first()``, let the loop end its step, then run ``second()``."""

    async def steps() -> None:
        first()
        await asyncio.sleep(0)
        second()

    asyncio.run(steps())
{% else %}
def in_two_steps(first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run ``first()``, let the hub end its turn, then run ``second()``."""
    first()
    gevent.sleep(0)
    second()
{% endif %}

def test_the_frames_of_one_step_leave_in_one_write_per_connection_in_order() -> None:
    one, two = Recorder(), Recorder()
    seen_within_the_step: list[list[bytes]] = []

    def burst() -> None:
        for number in range(5):
            BATCHES.add(one, b"one-%d;" % number)
            BATCHES.add(two, b"two-%d;" % number)
        seen_within_the_step.extend((list(one.writes), list(two.writes)))

    def after() -> None:
        assert seen_within_the_step == [[], []]  # nothing written while the step ran
        assert one.writes == [b"one-0;one-1;one-2;one-3;one-4;"]
        assert two.writes == [b"two-0;two-1;two-2;two-3;two-4;"]
        assert one.pending is None
        assert two.pending is None

    in_two_steps(burst, after)


def test_a_later_step_gets_a_write_of_its_own() -> None:
    one = Recorder()

    def first() -> None:
        BATCHES.add(one, b"a")

    def second() -> None:
        assert one.writes == [b"a"]
        BATCHES.add(one, b"b")
        BATCHES.add(one, b"c")

    in_two_steps(first, second)
    in_two_steps(lambda: None, lambda: None)
    assert one.writes == [b"a", b"bc"]


def test_one_callback_per_step_however_many_connections() -> None:
    scheduled: list[Callable[[], None]] = []
    batches = WriteBatches(scheduled.append)
    connections = [Recorder() for _ in range(3)]
    for connection in connections * 2:
        batches.add(connection, b"x")
    assert len(scheduled) == 1
    scheduled.pop()()
    assert [c.writes for c in connections] == [[b"xx"]] * 3
    batches.add(connections[0], b"y")
    assert len(scheduled) == 1

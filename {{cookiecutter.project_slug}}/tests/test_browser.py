"""The browser client in real headless Chromium, against the real server, across a restart."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.live_server import Server, start_server, stop_server

pytestmark = pytest.mark.slow

# Debian's package by default; CHROMIUM=/path/to/chrome points the test at another build.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# SCREENSHOT_PATH=client.png saves a picture of the page at the end of the chat test.
SCREENSHOT_PATH = os.environ.get("SCREENSHOT_PATH")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The server wants a token, which the page passes on: that Chromium's own Origin
# header passes the same-origin check is tested on the way.
TOKEN = "browser-s3cret"
# Fast reconnects keep the test short; the page passes these to RoomsClient.
PAGE_QUERY = f"?reconnectDelay=100&maxReconnectDelay=1000&token={TOKEN}"
TIMEOUT_MS = 10_000
NOT_CONNECTED = re.compile(r"^(connecting|reconnecting)$")

expect.set_options(timeout=TIMEOUT_MS)


class RestartableServer:
    """A live server of this test's own, which the test may stop and start again."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.current: Server | None = start_server(log_dir, env)
        self.port = self.current.port
        self.http_url = self.current.http_url

    def stop(self) -> None:
        if self.current is not None:
            stop_server(self.current)
            self.current = None

    def start(self) -> None:
        assert self.current is None, "the server is already running"
        self.current = start_server(self.log_dir, self.env, port=self.port)


@pytest.fixture
def live(tmp_path: Path, server_env: dict[str, str]) -> Iterator[RestartableServer]:
    server = RestartableServer(tmp_path, {**server_env, "AUTH_TOKEN": TOKEN})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = (
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install chromium), or set CHROMIUM, to run the browser test"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        # Playwright launches with a fresh, temporary profile of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser: Browser, live: RestartableServer) -> Iterator[Callable[..., Page]]:
    """Open the client page, each time in a browser context of its own (own storage).

    The contexts close before ``live`` stops, so no websocket outlives the test.
    """
    contexts: list[BrowserContext] = []

    def open_one(query: str = PAGE_QUERY, state: str | re.Pattern[str] = "open") -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{live.http_url}/{query}")
        expect(page.get_by_test_id("state")).to_have_attribute("data-state", state)
        return page

    try:
        yield open_one
    finally:
        for context in contexts:
            context.close()


def join(page: Page, room: str) -> None:
    page.get_by_test_id("room-name").fill(room)
    page.get_by_test_id("join").click()


def send(page: Page, text: str) -> None:
    page.get_by_test_id("message-text").fill(text)
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("message-text")).to_have_value("")


def expect_members(page: Page, room: str, members: int) -> None:
    item = page.get_by_test_id("rooms").locator(f'[data-room="{room}"]')
    expect(item).to_have_attribute("data-joined", "true")
    expect(item.get_by_test_id("members")).to_have_text(str(members))


def expect_message(page: Page, text: str) -> None:
    messages = page.get_by_test_id("log").locator('[data-kind="message"]')
    expect(messages.filter(has_text=text)).to_have_count(1)


def test_a_page_without_the_token_is_refused(
    live: RestartableServer, open_page: Callable[..., Page]
) -> None:
    page = open_page("?reconnectDelay=100&maxReconnectDelay=1000", state="reconnecting")
    expect(page.get_by_test_id("send")).to_be_disabled()
    assert live.current is not None
    assert TOKEN not in live.current.log()


def test_two_pages_chat_and_recover_from_a_server_restart(
    live: RestartableServer, open_page: Callable[..., Page]
) -> None:
    alice = open_page()
    bob = open_page()
    pages = [alice, bob]

    for page in pages:
        join(page, "lobby")
    for page in pages:
        expect_members(page, "lobby", 2)
        expect(page.get_by_test_id("send-room")).to_have_value("lobby")

    send(alice, "hello from alice")
    send(bob, "hello from bob")
    for page in pages:
        expect_message(page, "hello from alice")
        expect_message(page, "hello from bob")

    live.stop()
    for page in pages:
        expect(page.get_by_test_id("state")).to_have_attribute("data-state", NOT_CONNECTED)
        expect(page.get_by_test_id("send")).to_be_disabled()

    live.start()
    for page in pages:
        # Each page reconnects and rejoins "lobby" by itself.
        expect(page.get_by_test_id("state")).to_have_attribute("data-state", "open")
        expect_members(page, "lobby", 2)

    send(alice, "alice is back")
    send(bob, "bob is back")
    for page in pages:
        expect_message(page, "alice is back")
        expect_message(page, "bob is back")
        expect(page.get_by_test_id("log").locator('[data-kind="message"]')).to_have_count(4)
    if SCREENSHOT_PATH:
        alice.screenshot(path=SCREENSHOT_PATH)
    assert live.current is not None
    assert TOKEN not in live.current.log()  # it was in every handshake, and is in no log line


def test_a_page_that_was_offline_gets_every_message_it_missed_in_order_once(
    live: RestartableServer, open_page: Callable[..., Page]
) -> None:
    # Pings often, so that the page offline notices its dead connection in a second.
    away = open_page(f"{PAGE_QUERY}&pingInterval=300&pingTimeout=700")
    sender = open_page()
    for page in (away, sender):
        join(page, "resume")
    for page in (away, sender):
        expect_members(page, "resume", 2)

    # The page gives its connection up (no pong); the server cannot tell yet, and sends
    # the messages into a connection that the page no longer reads.
    away.context.set_offline(True)
    expect(away.get_by_test_id("state")).to_have_attribute("data-state", NOT_CONNECTED)
    texts = [f"while away {number:02d}" for number in range(20)]
    for text in texts:
        send(sender, text)
    away.context.set_offline(False)

    expect(away.get_by_test_id("state")).to_have_attribute("data-state", "open")
    log = away.get_by_test_id("log")
    came_back = log.locator('[data-kind="info"]', has_text="20 missed messages in #resume came")
    expect(came_back).to_have_count(1)
    messages = log.locator('[data-kind="message"] .text')
    expect(messages).to_have_count(20)
    assert messages.all_text_contents() == texts


def test_an_app_event_published_by_client_js_reaches_a_page_and_its_listener(
    live: RestartableServer, open_page: Callable[..., Page]
) -> None:
    page = open_page()
    join(page, "events")
    expect_members(page, "events", 1)
    # A second client in the same page, through client.js: it listens for the event,
    # publishes it, and hands back what its listener got.
    received = page.evaluate(
        """async (token) => {
            const { RoomsClient, socketUrl } = await import("./static/client.js");
            const client = new RoomsClient(socketUrl("ws", location.href, token));
            const got = new Promise((resolve) => client.on("shape.add", resolve));
            client.on("joined", () => client.publish("events", "shape.add", { x: 1, y: [2] }));
            client.connect();
            client.join("events");
            const detail = await got;
            client.close();
            return { event: detail.event, data: detail.data, own: detail.own };
        }""",
        TOKEN,
    )
    assert received == {"event": "shape.add", "data": {"x": 1, "y": [2]}, "own": True}
    shown = page.get_by_test_id("log").locator('[data-testid="event"]')
    expect(shown).to_have_text('shape.add {"x":1,"y":[2]}')

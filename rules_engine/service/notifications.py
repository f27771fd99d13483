"""Notifications that arrive: `notify` actions and engine events delivered through Apprise.

Channels are named in the engine config (`notifications.channels`); each one's Apprise URL(s)
are read from an environment variable or a file (they hold tokens), registered for redaction
as soon as they are read, and never logged or audited. Delivery runs on a task of its own: the
engine only queues a message (`send` never blocks, from any thread); each message is tried,
retried with exponential backoff (`backoff`, doubled each time, `retries` times) and its
outcome audited as a `notification` record and counted in
`rules_engine_notifications_total{channel, result}`.

A `notify` naming a channel that is not configured is audited as not delivered
(`not_configured`). In dry-run, notifications are delivered unless `notifications.dry_run` is
false (people rehearse their alerts too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import apprise

from rules_engine.config import NotificationSettings
from rules_engine.redact import register_secret
from rules_engine.secret_reader import SecretError, load_secret

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
ENGINE_EVENTS = ("kill_switch", "readiness_lost", "readiness_restored", "order_ambiguous", "reload_refused",
                 "rule_error")
Audit = Callable[[str, "str | None", Mapping[str, Any]], None]
"""`audit(kind, rule_id, data)`."""
Count = Callable[[str, str], None]
"""`count(channel, result)`."""


class NotificationConfigError(ValueError):
    """A channel's URL cannot be read or Apprise does not accept it (the message names the
    channel and where its URL was looked for, never the URL)."""


@dataclass(frozen=True)
class Message:
    channel: str
    body: str
    title: str
    rule_id: str | None = None
    intent_id: str | None = None
    event: str | None = None


def register_url_secrets(url: str) -> None:
    """Register an Apprise URL and the parts of it that may be tokens (user, password, path
    segments and query values of 6+ characters) for redaction."""
    register_secret(url)
    parts = urlsplit(url)
    candidates = [parts.username or "", parts.password or ""]
    candidates += [segment for segment in parts.path.split("/")]
    candidates += [value for _, value in parse_qsl(parts.query)]
    if parts.hostname and "." not in parts.hostname and parts.hostname not in ("localhost",):
        candidates.append(parts.hostname)  # tgram://{bot_token}/..., ntfy://{topic}: the "host" is a token
    for candidate in candidates:
        if len(candidate) >= 6 and not candidate.isdigit():
            register_secret(candidate)


def channel_urls(settings: NotificationSettings, environ: Mapping[str, str]) -> dict[str, list[str]]:
    """Each channel's URLs, read and registered for redaction. Raises NotificationConfigError."""
    found: dict[str, list[str]] = {}
    for name, channel in settings.channels.items():
        try:
            text = load_secret(env=channel.url_env, file=channel.url_file, environ=environ)
        except SecretError as exc:
            raise NotificationConfigError(f"notification channel {name!r}: {exc}") from None
        urls = [u for u in re.split(r"[\s,]+", text or "") if u]
        if not urls:
            where = f"${channel.url_env}" if channel.url_env else channel.url_file
            raise NotificationConfigError(f"notification channel {name!r}: no URL in {where}")
        for url in urls:
            register_url_secrets(url)
        checker = apprise.Apprise()
        for index, url in enumerate(urls, 1):
            if not checker.add(url):
                raise NotificationConfigError(f"notification channel {name!r}: URL {index} is not one Apprise "
                                              f"knows (see https://github.com/caronc/apprise/wiki)")
        found[name] = urls
    return found


class Notifier:
    """Queues and delivers messages (see the module docstring)."""

    def __init__(
        self,
        settings: NotificationSettings,
        urls: Mapping[str, list[str]],
        *,
        mode: str,
        audit: Audit,
        count: Count,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.mode = mode
        self._apprise: dict[str, apprise.Apprise] = {}
        for name, channel_urls_ in urls.items():
            client = apprise.Apprise()
            for url in channel_urls_:
                client.add(url)
            self._apprise[name] = client
        self._audit = audit
        self._count = count
        self._clock = clock
        self._sleep = sleep
        self._queue: asyncio.Queue[Message | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.pending = 0
        self._warned: set[str] = set()

    @property
    def channels(self) -> list[str]:
        return sorted(self._apprise)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run())

    def send(self, message: Message) -> None:
        """Queue a message for delivery; never blocks (any thread)."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        if message.channel not in self._apprise:
            if message.channel not in self._warned:
                self._warned.add(message.channel)
                log.warning("notify: channel %r is not configured (notifications.channels in the engine config)",
                            message.channel)
            self._outcome(message, "not_configured", 0, f"channel {message.channel!r} is not configured")
            return
        if self.mode == "dry-run" and not self.settings.dry_run:
            self._outcome(message, "skipped", 0, "notifications are off in dry-run (notifications.dry_run: false)")
            return
        with self._lock:
            if self.pending >= QUEUE_LIMIT:
                full = True
            else:
                full = False
                self.pending += 1
        if full:
            self._outcome(message, "failed", 0, f"notification queue full ({QUEUE_LIMIT} waiting)")
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, message)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self.pending -= 1

    def notify_event(self, event: str, title: str, body: str) -> None:
        """Route an engine event to its configured channel, if any."""
        channel = self.settings.events.get(event)
        if channel is not None:
            self.send(Message(channel, body, title, event=event))

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop."""
        if self._task is None or self._queue is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            if message is None:
                return
            try:
                await self._deliver(message)
            finally:
                with self._lock:
                    self.pending -= 1

    async def _deliver(self, message: Message) -> None:
        client = self._apprise[message.channel]
        error = ""
        attempts = 0
        for attempt in range(self.settings.retries + 1):
            attempts = attempt + 1
            try:
                delivered = await asyncio.wait_for(
                    asyncio.to_thread(client.notify, body=message.body, title=message.title),
                    self.settings.timeout)
                if delivered:
                    self._outcome(message, "delivered", attempts, "")
                    return
                error = "the service refused or could not be reached"
            except TimeoutError:
                error = f"no answer within {self.settings.timeout:g} s"
            except Exception as exc:  # a plugin failing must not stop the worker
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.settings.retries:
                await self._sleep(self.settings.backoff * (2 ** attempt))
        self._outcome(message, "failed", attempts, error)

    def _outcome(self, message: Message, result: str, attempts: int, error: str) -> None:
        self._count(message.channel, result)
        data: dict[str, Any] = {"channel": message.channel, "ok": result == "delivered", "result": result,
                                "attempts": attempts, "title": message.title, "message": message.body}
        if message.intent_id:
            data["intent_id"] = message.intent_id
        if message.event:
            data["event"] = message.event
        if error:
            data["error"] = error
        self._audit("notification", message.rule_id, data)

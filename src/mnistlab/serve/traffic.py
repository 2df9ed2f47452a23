"""What every request passes through before its route: a bound on the image requests in flight
that shortens while clients are being turned away (503 beyond it, at once), security headers,
the Prometheus metrics served at /metrics, and handing freed memory back once a worker is idle.

With several worker processes the metrics are written to files in ``PROMETHEUS_MULTIPROC_DIR``
(``host.run`` makes one) and /metrics sums every worker's, whichever worker answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import anyio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnistlab import heap

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Seconds a client is told to wait after a 503: the queue of a few ms requests drains by then.
RETRY_AFTER_SECONDS = 1
# While clients are being turned away, each this many of them shortens the bound by one: with
# four times more clients than the bound, it is at its floor.
SHRINK_PER_TURNED_AWAY = 4
# The shortest the bound gets, as a fraction of --max-in-flight: enough to keep a worker busy.
FLOOR_FRACTION = 1 / 8
# A canvas is read in a few ms, a photo in tens, a batch in up to seconds.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A worker with no image work for this long hands the heap pages its photos freed back to the
# system. Under load it never waits this long, so no request pays for the trim (about 0.5 ms)
# or for faulting the pages in again.
IDLE_TRIM_SECONDS = 1.0
# Headers on every answer; the page adds its Content-Security-Policy (app.PAGE_POLICY).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


_BUSY = json.dumps({"error": f"the server is busy; retry in {RETRY_AFTER_SECONDS} s"}).encode()
# The 503's messages, built once: under overload most answers are these.
BUSY_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BUSY)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ],
}
BUSY_BODY: Message = {"type": "http.response.body", "body": _BUSY}


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


class Metrics:
    """The app's metrics, in a registry of its own (a test may build several apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "mnistlab_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mnistlab_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mnistlab_http_requests_in_flight",
            "Image requests being handled now (waiting included).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.overloaded = Counter(
            "mnistlab_http_overloaded",
            "Image requests answered 503 at once: as many were in flight as the worker takes"
            " now (--max-in-flight, fewer while it is turning clients away).",
            registry=registry,
        )
        self.image_seconds = Histogram(
            "mnistlab_image_duration_seconds",
            "Time to decode, normalise and classify one upload (the model's share included).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.answers = Counter(
            "mnistlab_answers",
            "Images read (a digit or a number), by answer: digit, uncertain (a flagged best"
            " guess; for a number, the whole or any of its digits), no_digit (no ink, or no"
            " number) or not_digit (the not-a-digit head said so).",
            ["answer"],
            registry=registry,
        )
        for answer in ("digit", "uncertain", "no_digit", "not_digit"):
            self.answers.labels(answer)  # Shown at 0 before the first image.

    def answered(self, prediction: Any) -> None:
        """Count one image's answer (a ``predict.Prediction``)."""
        if prediction.rejected is None:
            answer = "uncertain" if prediction.uncertain else "digit"
        else:
            answer = "no_digit" if prediction.confidence is None else "not_digit"
        self.answers.labels(answer).inc()

    def answered_number(self, reading: Any) -> None:
        """Count one number's answer (a ``reading.NumberReading``): refused before the model
        (no digits) is no_digit, refused by the not-a-digit head is not_digit."""
        if reading.rejected is not None:
            answer = "not_digit" if reading.digits else "no_digit"
        else:
            answer = "uncertain" if reading.uncertain else "digit"
        self.answers.labels(answer).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format, summed over every worker when there are several."""
        if multiprocess():
            from prometheus_client import multiprocess as shared

            registry = CollectorRegistry()
            shared.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def is_image_work(scope: Scope) -> bool:
    """Requests that read images: bounded in flight. Probes, the page and /metrics are not,
    so that an overloaded server still says it is alive and how busy it is."""
    return scope["method"] == "POST" and scope["path"].startswith("/api/")


class Admission:
    """Which image requests a worker starts, and which it answers 503 at once.

    A queue is worth keeping while it absorbs bursts: the requests in it would otherwise be
    refused, and the worker reaches them soon. Once clients are being turned away, more
    requests arrive than the worker can answer; it is busy whatever the queue's length, and a
    longer queue only makes each admitted request wait longer. So the bound is
    ``max_in_flight`` while nobody is turned away and shortens by one for each
    ``SHRINK_PER_TURNED_AWAY`` clients turned away in the last ``RETRY_AFTER_SECONDS`` (the time
    they were told to wait) and not admitted since, down to ``FLOOR_FRACTION`` of it. A client
    that retries at once counts once, however often it is refused.

    Args:
        max_in_flight: the bound with nobody turned away, never exceeded.
        clock: seconds, monotonic (a test's own clock).
    """

    def __init__(self, max_in_flight: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_in_flight, self.clock = max_in_flight, clock
        self.floor = max(1, round(max_in_flight * FLOOR_FRACTION))
        self.active = 0  # One event loop per process: plain counts are exact.
        # The clients turned away (address and port) and when, oldest first.
        self.turned_away: OrderedDict[Hashable, float] = OrderedDict()

    def bound(self) -> int:
        """Image requests in flight allowed now."""
        forget = self.clock() - RETRY_AFTER_SECONDS
        while self.turned_away and next(iter(self.turned_away.values())) < forget:
            self.turned_away.popitem(last=False)
        shorter = len(self.turned_away) // SHRINK_PER_TURNED_AWAY
        return max(self.floor, self.max_in_flight - shorter)

    def admit(self, client: Hashable) -> bool:
        """Start one request from ``client`` (its address and port), or turn it away."""
        if self.active < self.bound():
            self.active += 1
            self.turned_away.pop(client, None)
            return True
        self.turned_away[client] = self.clock()
        self.turned_away.move_to_end(client)
        return False

    def release(self) -> None:
        """One admitted request is answered."""
        self.active -= 1


class IdleTrim:
    """Calls ``trim`` once the worker has been idle for ``delay`` seconds after image work.

    glibc keeps the pages of freed photo buffers, so without this a worker's memory wanders up
    and down by tens of MiB with the photos it happened to read.
    """

    def __init__(
        self, trim: Callable[[], object] = heap.release_freed_memory, delay: float | None = None
    ) -> None:
        self.trim = trim
        self.delay = IDLE_TRIM_SECONDS if delay is None else delay
        self.timer: asyncio.TimerHandle | None = None

    def busy(self) -> None:
        """Image work started: no trim until it is over."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def idle(self) -> None:
        """The last image work in flight is answered: trim unless more starts meanwhile."""
        self.busy()
        self.timer = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.trim()


class Gate:
    """The bound on image requests in flight and the metrics a refusal is counted in, shared by
    ``TrafficMiddleware`` and the server's HTTP protocol (``serve.protocol``), which admits or
    refuses each request as soon as its headers are parsed. The app's lifespan hands it to the
    protocol (``GATE_STATE``); a request the protocol admitted carries ``ADMITTED`` in its scope.
    """

    def __init__(self, admission: Admission, metrics: Metrics) -> None:
        self.admission, self.metrics = admission, metrics

    def admit(self, scope: Scope) -> bool:
        """Whether a request starts; False: image work turned away (count it, ``turned_away``)."""
        if scope.get(ADMITTED) or not is_image_work(scope):
            return True
        if self.admission.admit(client_of(scope)):
            scope[ADMITTED] = True
            return True
        return False

    def turned_away(self, scope: Scope, seconds: float) -> None:
        """Count one 503 of the bound, answered ``seconds`` after the request arrived."""
        self.metrics.overloaded.inc()
        self.metrics.requests.labels("overloaded", scope["method"], "503").inc()
        self.metrics.latency.labels("overloaded").observe(seconds)


# The key of the lifespan state (ASGI's scope["state"]) that holds the app's Gate.
GATE_STATE = "mnistlab.gate"
# The scope key of image work admitted (and counted in flight), until its answer releases it.
ADMITTED = "mnistlab.admitted"


def _header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


# The 503's own headers, built once: only the server's default ones (the date) change.
_BUSY_HEADERS = _header_lines([*BUSY_START["headers"], *SECURITY_HEADERS])


def busy_response(default_headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
    """The whole HTTP/1.1 503 answer to a request turned away, as bytes: the server's default
    headers (date, server), then the ASGI answer's own, ``connection: close`` when ``close``."""
    return b"".join(
        [
            b"HTTP/1.1 503 Service Unavailable\r\n",
            _header_lines(default_headers),
            _BUSY_HEADERS,
            b"connection: close\r\n" if close else b"",
            b"\r\n",
            BUSY_BODY["body"],
        ]
    )


class TrafficMiddleware:
    """Bounds image requests in flight (see ``Admission``), adds security headers, and records
    each answer.

    Args:
        app: the app inside.
        gate: which image requests start (the others are answered 503 with Retry-After,
            without being read) and the metrics everything is recorded in.
        idle_trim: told when image work starts and when none is left in flight.
    """

    def __init__(self, app: ASGIApp, gate: Gate, idle_trim: IdleTrim) -> None:
        self.app, self.gate, self.idle_trim = app, gate, idle_trim
        self.metrics, self.admission = gate.metrics, gate.admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        bounded = is_image_work(scope)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        # Not admitted by the server's protocol (another server, a test client).
        admitted_here = bounded and not scope.get(ADMITTED)
        if not self.gate.admit(scope):
            await send_with_headers(BUSY_START)
            await send_with_headers(BUSY_BODY)
            self.gate.turned_away(scope, time.perf_counter() - started)
            return
        if bounded:
            self.metrics.in_flight.inc()
            self.idle_trim.busy()
        try:
            if admitted_here:
                # A canvas is read on the event loop without yielding: without this turn, each
                # request would run to its end before the next is counted, the count would stay
                # at 1 and requests would queue unbounded in the loop instead. The protocol
                # counts a request when its headers are parsed, before its task runs.
                await anyio.lowlevel.checkpoint()
            await self.app(scope, receive, send_with_headers)
        finally:
            if bounded:
                self.admission.release()
                self.metrics.in_flight.dec()
                if self.admission.active == 0:
                    self.idle_trim.idle()
            self._record(scope, route_of(scope), status, started)

    def _record(self, scope: Scope, route: str, status: int, started: float) -> None:
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def client_of(scope: Scope) -> Hashable:
    """The connection a request came on (its address and port), or a key of its own."""
    client = scope.get("client")
    return tuple(client) if client else object()


# Mounted static files: each folder counts as one route.
MOUNTS = ("/static/", "/docs-assets/")


def route_of(scope: Scope) -> str:
    """The matched route's template (never the raw path: labels stay few), or "other"."""
    path = getattr(scope.get("route"), "path", None)
    if path is not None:
        return path
    for mount in MOUNTS:
        if scope["path"].startswith(mount):
            return mount.rstrip("/")
    return "other"

"""What every request passes through before its route: a bound on the image requests in flight
(503 beyond it, at once), security headers, and the Prometheus metrics served at /metrics.

With several worker processes the metrics are written to files in ``PROMETHEUS_MULTIPROC_DIR``
(``host.run`` makes one) and /metrics sums every worker's, whichever worker answers.
"""

from __future__ import annotations

import json
import os
import time
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

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Seconds a client is told to wait after a 503: the queue of a few ms requests drains by then.
RETRY_AFTER_SECONDS = 1
# A canvas is read in a few ms, a photo in tens, a batch in up to seconds.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Headers on every answer; the page adds its Content-Security-Policy (app.PAGE_POLICY).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


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
            "Requests answered 503 at once because --max-in-flight were being handled.",
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
            " guess; for a number, any of its digits), no_digit (no ink, or no number) or"
            " not_digit (the not-a-digit head said so).",
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
            answer = "uncertain" if any(digit.uncertain for digit in reading.digits) else "digit"
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


class TrafficMiddleware:
    """Bounds image requests in flight, adds security headers, and records each answer.

    Args:
        app: the app inside.
        metrics: where to record.
        max_in_flight: image requests handled at once; one more is answered 503 with
            Retry-After, without reading it.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_in_flight: int) -> None:
        self.app, self.metrics, self.max_in_flight = app, metrics, max_in_flight
        self.active = 0  # One event loop per process: a plain counter is exact.

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

        if bounded and self.active >= self.max_in_flight:
            self.metrics.overloaded.inc()
            await self._busy(send_with_headers)
            self._record(scope, "overloaded", 503, started)
            return
        if bounded:
            self.active += 1
            self.metrics.in_flight.inc()
        try:
            if bounded:
                # A canvas is read on the event loop without yielding: without this turn, each
                # request would run to its end before the next is counted, the count would stay
                # at 1 and requests would queue unbounded in the loop instead.
                await anyio.lowlevel.checkpoint()
            await self.app(scope, receive, send_with_headers)
        finally:
            if bounded:
                self.active -= 1
                self.metrics.in_flight.dec()
            self._record(scope, route_of(scope), status, started)

    async def _busy(self, send: Send) -> None:
        body = json.dumps(
            {"error": f"the server is busy; retry in {RETRY_AFTER_SECONDS} s"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, route: str, status: int, started: float) -> None:
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)


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

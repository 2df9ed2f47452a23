"""The server's HTTP protocol: image requests admitted or refused as their headers are parsed,
driven byte by byte as uvicorn would, with a transport that records what is written."""

import asyncio
import json

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from mnistlab.predict import Predictor
from mnistlab.serve import ServeOptions, create_app, traffic
from mnistlab.serve.protocol import RefusingHttpProtocol
from tests.helpers import drawing, samples


class Transport(asyncio.Transport):
    """Records what the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_run(None, threads=1)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connect(app, loop) -> tuple[RefusingHttpProtocol, Transport]:
    """A connection to ``app`` with its lifespan state handed over, as the server does."""
    config = Config(app=app, http=RefusingHttpProtocol, lifespan="off", log_level="warning")
    config.load()
    app.state.ready = True
    protocol = RefusingHttpProtocol(
        config=config,
        server_state=ServerState(),
        app_state={traffic.GATE_STATE: app.state.gate},
        _loop=loop,
    )
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def upload(body: bytes, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (
        b"POST /api/predict HTTP/" + version + b"\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


def answers(written: bytes) -> list[tuple[int, dict, bytes]]:
    """The HTTP answers in ``written``: status, headers, body."""
    found, rest = [], bytes(written)
    while rest:
        head, rest = rest.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        length = int(headers["content-length"])
        found.append((int(status_line.split()[1]), headers, rest[:length]))
        rest = rest[length:]
    return found


def run_tasks(protocol, loop) -> None:
    """Run the connection's ASGI tasks to their end."""
    while protocol.tasks:
        loop.run_until_complete(asyncio.gather(*protocol.tasks))


def test_requests_over_the_bound_are_answered_503_without_an_asgi_task(predictor, loop):
    app = create_app(ServeOptions(max_in_flight=1), predictor)
    gate = app.state.gate
    assert gate.admission.admit(("10.0.0.1", 1))  # another client's request fills the bound
    protocol, transport = connect(app, loop)
    image = drawing("7")
    # Two uploads in one read, the second behind the first's body, then a probe.
    protocol.data_received(upload(image) + upload(image))
    assert not protocol.tasks  # neither reached the app
    busy = answers(transport.written)
    assert [status for status, _, _ in busy] == [503, 503]
    for _, headers, body in busy:
        assert headers["retry-after"] == "1" and headers["x-content-type-options"] == "nosniff"
        assert headers.get("connection") != "close"
        assert "busy" in json.loads(body)["error"]
    assert not transport.closed and protocol.timeout_keep_alive_task is not None
    protocol.data_received(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    # The probe is not bounded; the keep-alive timer the refusals armed is off while it runs.
    assert len(protocol.tasks) == 1 and protocol.timeout_keep_alive_task is None
    run_tasks(protocol, loop)
    assert answers(transport.written)[2][0] == 200
    metrics = app.state.metrics.exposition()[0].decode()
    assert samples(metrics, "mnistlab_http_overloaded_total")[()] == 2
    key = (("method", "POST"), ("route", "overloaded"), ("status", "503"))
    assert samples(metrics, "mnistlab_http_requests_total")[key] == 2


def test_an_admitted_request_is_counted_once_and_released_after_its_answer(predictor, loop):
    app = create_app(ServeOptions(max_in_flight=1), predictor)
    admission = app.state.gate.admission
    protocol, transport = connect(app, loop)
    image = drawing("7")
    protocol.data_received(upload(image))
    # Counted as its headers were parsed, before its task has run.
    assert admission.active == 1 and len(protocol.tasks) == 1
    protocol.data_received(b"")
    run_tasks(protocol, loop)
    (status, _, body), *_ = answers(transport.written)
    assert status == 200 and json.loads(body)["label"] == 7
    assert admission.active == 0  # not counted a second time by the middleware, and released
    protocol.data_received(upload(image))  # room again
    run_tasks(protocol, loop)
    assert [status for status, _, _ in answers(transport.written)] == [200, 200]


@pytest.mark.parametrize(
    "version, extra",
    [(b"1.0", b""), (b"1.1", b"Expect: 100-continue\r\n")],
    ids=["http1.0", "expect"],
)
def test_a_refused_connection_that_cannot_be_reused_is_closed(predictor, loop, version, extra):
    app = create_app(ServeOptions(max_in_flight=1), predictor)
    assert app.state.gate.admission.admit(("10.0.0.1", 1))
    protocol, transport = connect(app, loop)
    protocol.data_received(upload(drawing("7"), version, extra).split(b"\r\n\r\n")[0] + b"\r\n\r\n")
    (status, headers, _), *_ = answers(transport.written)
    assert status == 503 and headers["connection"] == "close" and transport.closed
    assert b"100 Continue" not in transport.written

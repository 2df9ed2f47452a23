"""`mnistlab serve` as an operator meets it: overload, stalled and dropped uploads, large
uploads from simple clients, SIGTERM, a crashed worker, /metrics, offline /docs, headers."""

import io
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request

import anyio
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from mnistlab.predict import Predictor
from mnistlab.serve import ServeOptions, create_app, exposure_warning, traffic
from tests.helpers import BLANK, drawing, samples, start_server, stop_server


def seven() -> bytes:
    """A 7 as the page's canvas draws it: a white stroke on black, 280x280."""
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(80, 60), (200, 60), (120, 230)], fill=255, width=20)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_run(None, threads=1)


# --- In process ---------------------------------------------------------------------------------


def test_metrics_count_requests_answers_and_latency(predictor):
    with TestClient(create_app(ServeOptions(), predictor)) as client:
        assert client.post("/api/predict", content=seven(), headers={"Content-Type": "image/png"})
        client.post("/api/predict", content=b"not an image", headers={"Content-Type": "image/png"})
        blank = io.BytesIO()
        Image.new("L", (64, 64), 255).save(blank, format="PNG")
        client.post("/api/predict", content=blank.getvalue(), headers={"Content-Type": "image/png"})
        client.get("/api/nowhere")
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    requests = samples(text, "mnistlab_http_requests_total")
    route = (("method", "POST"), ("route", "/api/predict"))
    assert requests[(*route[:1], route[1], ("status", "200"))] == 2
    assert requests[(*route[:1], route[1], ("status", "422"))] == 1
    assert requests[(("method", "GET"), ("route", "other"), ("status", "404"))] == 1
    answers = samples(text, "mnistlab_answers_total")
    assert answers[(("answer", "digit"),)] == 1 and answers[(("answer", "no_digit"),)] == 1
    latency = samples(text, "mnistlab_http_request_duration_seconds_count")
    assert latency[(("route", "/api/predict"),)] == 3
    assert samples(text, "mnistlab_image_duration_seconds_count")[()] == 2
    assert samples(text, "mnistlab_http_requests_in_flight")[()] == 0


def test_metrics_count_the_answers_of_numbers_read(predictor):
    number = Image.new("L", (560, 280), 0)
    for position, digit in enumerate("17"):
        number.paste(Image.open(io.BytesIO(drawing(digit))), (280 * position, 0))
    buffer = io.BytesIO()
    number.save(buffer, format="PNG")
    png = {"Content-Type": "image/png"}
    with TestClient(create_app(ServeOptions(), predictor)) as client:
        read = client.post("/api/read", content=buffer.getvalue(), headers=png)
        assert read.json()["text"] == "17", read.text
        assert client.post("/api/read", content=BLANK, headers=png).json()["text"] is None
        text = client.get("/metrics").text
    answers = samples(text, "mnistlab_answers_total")
    assert answers[(("answer", "digit"),)] == 1 and answers[(("answer", "no_digit"),)] == 1
    assert answers[(("answer", "uncertain"),)] == 0 and answers[(("answer", "not_digit"),)] == 0


def scope_of(app, path="/api/predict", length=100_000):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"image/png"), (b"content-length", str(length).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": app,
    }


async def call(app, scope, chunks: list[bytes], release: anyio.Event | None = None):
    """Send ``chunks`` (the last one ends the body once ``release`` is set); the answer."""
    answer = {"status": None, "headers": {}, "body": b""}
    queue = list(chunks)

    async def receive():
        if len(queue) == 1 and release is not None:
            await release.wait()
        if not queue:
            await anyio.sleep_forever()
        return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue)}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer


def test_overload_is_an_immediate_503_with_retry_after(predictor):
    app = create_app(ServeOptions(max_in_flight=1), predictor)
    app.state.ready = True
    image = seven()
    answers = {}

    async def main():
        release = anyio.Event()

        async def first():
            scope = scope_of(app, length=len(image))
            answers["first"] = await call(app, scope, [image[:100], image[100:]], release)

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await anyio.sleep(0.2)  # The first is in flight, its body half sent.
            started = time.perf_counter()
            answers["second"] = await call(app, scope_of(app, length=len(image)), [image])
            answers["waited"] = time.perf_counter() - started
            probe = dict(scope_of(app, "/api/health"), method="GET", headers=[])
            answers["health"] = await call(app, probe, [b""])
            release.set()

    anyio.run(main)
    second = answers["second"]
    assert second["status"] == 503 and second["headers"]["retry-after"] == "1"
    assert "busy" in json.loads(second["body"])["error"]
    assert answers["waited"] < 0.5  # refused at once, not queued
    assert answers["health"]["status"] == 200  # probes are not bounded
    assert answers["first"]["status"] == 200
    assert json.loads(answers["first"]["body"])["label"] == 7


def test_canvases_arriving_together_beyond_the_bound_are_refused(predictor):
    """Each canvas is read on the event loop without waiting for anything, yet requests that
    have arrived count as in flight: five at once against a bound of two, three are 503s."""
    app = create_app(ServeOptions(max_in_flight=2), predictor)
    app.state.ready = True
    image = seven()
    statuses = []

    async def one():
        statuses.append((await call(app, scope_of(app, length=len(image)), [image]))["status"])

    async def main():
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)

    anyio.run(main)
    assert sorted(statuses) == [200, 200, 503, 503, 503]


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bound_shortens_while_clients_are_turned_away():
    clock = Clock()
    admission = traffic.Admission(20, clock=clock)
    shrink = traffic.SHRINK_PER_TURNED_AWAY
    assert admission.bound() == 20 and admission.floor == round(20 * traffic.FLOOR_FRACTION)
    assert all(admission.admit(("10.0.0.1", port)) for port in range(20))  # nobody turned away
    assert not admission.admit(("10.0.0.2", 1))  # the hard cap
    for _ in range(50):  # a client that retries at once counts once
        assert not admission.admit(("10.0.0.2", 1))
    assert admission.bound() == 20
    for port in range(2, 2 * shrink + 1):
        assert not admission.admit(("10.0.0.2", port))
    assert admission.bound() == 18
    for port in range(10):
        admission.release()
    assert admission.active == 10
    # Ten in flight, under the cap, yet more than the bound allows now ...
    assert all(admission.admit(("10.0.0.3", port)) for port in range(8))
    assert not admission.admit(("10.0.0.3", 8)) and admission.active == 18
    # ... and turned-away clients that get in no longer count (eleven were waiting, nine now).
    for _ in range(18):
        admission.release()
    assert admission.admit(("10.0.0.2", 1)) and admission.admit(("10.0.0.3", 8))
    assert len(admission.turned_away) == 2 * shrink - 1 and admission.bound() == 19
    for port in range(1000):  # however many are turned away, the floor stays
        admission.turned_away[("10.0.0.4", port)] = clock.now
    assert admission.bound() == admission.floor
    clock.now += traffic.RETRY_AFTER_SECONDS + 0.01  # they were told to come back by now
    assert admission.bound() == 20 and not admission.turned_away


def test_while_clients_are_turned_away_fewer_requests_wait():
    """Through the middleware, with a slow fake model that answers when told to: four requests
    in flight leave room for a fifth under a light load, not while twenty clients are being
    turned away; once they have been told to come back, there is room again."""
    clock = Clock()
    admission = traffic.Admission(8, clock=clock)
    app = traffic.TrafficMiddleware(
        None, traffic.Gate(admission, traffic.Metrics()), traffic.IdleTrim(list)
    )
    done: dict[int, anyio.Event] = {}
    answers: dict[int, dict] = {}

    async def slow_model(scope, receive, send):
        await done.setdefault(scope["client"][1], anyio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app.app = slow_model

    async def ask(port):
        scope = {"type": "http", "method": "POST", "path": "/api/predict", "headers": [],
                 "client": ("192.0.2.1", port)}  # fmt: skip
        answers[port] = await call(app, scope, [b""])

    async def answer(group, ports):
        for port in ports:
            done.setdefault(port, anyio.Event()).set()
        await anyio.wait_all_tasks_blocked()

    async def main():
        async with anyio.create_task_group() as group:
            for port in range(5):
                group.start_soon(ask, port)
            await anyio.wait_all_tasks_blocked()
            assert app.admission.active == 5  # light: the fifth got in beside four
            await answer(group, [4])
            for port in range(4, 8):
                group.start_soon(ask, port + 1)
            await anyio.wait_all_tasks_blocked()
            assert app.admission.active == 8  # the hard cap
            for port in range(100, 120):  # twenty clients turned away
                await ask(port)
            await answer(group, [5, 6, 7, 8])
            assert app.admission.active == 4
            await ask(200)  # four in flight, as before, yet turned away now
            assert app.admission.active == 4
            clock.now += traffic.RETRY_AFTER_SECONDS + 0.01
            group.start_soon(ask, 201)
            await anyio.wait_all_tasks_blocked()
            assert app.admission.active == 5  # room again
            await answer(group, [0, 1, 2, 3, 201])

    anyio.run(main)
    refused = [answers[port] for port in [*range(100, 120), 200]]
    assert all(answer["status"] == 503 for answer in refused)
    assert all(answer["headers"]["retry-after"] == "1" for answer in refused)
    assert "busy" in json.loads(refused[-1]["body"])["error"]
    served = [0, 1, 2, 3, 4, 5, 6, 7, 8, 201]
    assert [answers[port]["status"] for port in served] == [200] * len(served)


def test_a_worker_trims_its_heap_only_once_image_work_has_stopped():
    trims = []
    idle_trim = traffic.IdleTrim(lambda: trims.append(time.monotonic()), delay=0.05)
    app = traffic.TrafficMiddleware(
        None, traffic.Gate(traffic.Admission(8), traffic.Metrics()), idle_trim
    )
    release = anyio.Event()

    async def model(scope, receive, send):
        if scope["client"][1] == 1:
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app.app = model

    def scope(method, port):
        return {"type": "http", "method": method, "path": "/api/predict", "headers": [],
                "client": ("192.0.2.1", port)}  # fmt: skip

    async def main():
        async with anyio.create_task_group() as group:
            group.start_soon(call, app, scope("POST", 1), [b""])
            await anyio.wait_all_tasks_blocked()
            await call(app, scope("POST", 2), [b""])
            assert idle_trim.timer is None  # the first is still in flight
            await anyio.sleep(0.15)
            assert not trims
            release.set()
        assert idle_trim.timer is not None  # none in flight now
        await call(app, scope("POST", 3), [b""])  # restarts the wait
        finished = time.monotonic()
        await call(app, scope("GET", 4), [b""])  # not image work: changes nothing
        await anyio.sleep(0.3)
        assert len(trims) == 1 and trims[0] - finished >= 0.05

    anyio.run(main)


def test_a_stalled_upload_gets_408_and_frees_its_slot(predictor):
    app = create_app(ServeOptions(max_in_flight=1, read_timeout=0.3), predictor)
    image = seven()

    async def main():
        never = anyio.Event()  # The rest of the body never comes.
        stalled = await call(app, scope_of(app, length=len(image)), [image[:100], b""], never)
        after = await call(app, scope_of(app, length=len(image)), [image])
        return stalled, after

    stalled, after = anyio.run(main)
    assert stalled["status"] == 408 and stalled["headers"]["connection"] == "close"
    assert "stalled" in json.loads(stalled["body"])["error"]
    assert after["status"] == 200  # the slot was given back


def test_docs_render_from_local_files_only(predictor):
    with TestClient(create_app(ServeOptions(), predictor)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert f'"/docs-assets/{asset}"' in page.text
            assert client.get(f"/docs-assets/{asset}").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "mnistlab"


def test_security_headers(predictor):
    with TestClient(create_app(ServeOptions(), predictor)) as client:
        for path in ("/", "/api/health", "/static/app.js"):
            headers = client.get(path).headers
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"
        policy = client.get("/").headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_a_warning_only_for_addresses_others_can_reach():
    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    assert exposure_warning("localhost") is None
    assert "reverse proxy" in exposure_warning("0.0.0.0")


# --- A real server ------------------------------------------------------------------------------


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


def post(url: str, data: bytes, timeout=30) -> dict:
    request = urllib.request.Request(
        url + "api/predict", data=data, headers={"Content-Type": "image/png"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def server():
    process, url = start_server("--max-upload-mb", "10")
    yield process, url
    stop_server(process)


def test_urllib_reads_the_413_of_a_16_mb_upload(server):
    """urllib sends the whole body before it reads; the answer must still reach it."""
    _, url = server
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, os.urandom(16 * 1024 * 1024))
        assert refused.value.code == 413
        assert "upload too large" in json.load(refused.value)["error"]


def test_a_dropped_upload_is_one_log_line_without_traceback():
    process, url = start_server()
    try:
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as connection:
            connection.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: 1000000\r\n\r\n" + b"\0" * 5000
            )
            time.sleep(0.3)
        time.sleep(0.5)
        assert post(url, seven())["label"] == 7
    finally:
        code, _, err = stop_server(process)
    assert code == 0
    assert err.count("disconnected") == 1, err
    assert "Traceback" not in err and "Exception in ASGI" not in err, err


def test_sigterm_lets_a_request_in_flight_finish_and_refuses_new_ones():
    process, url = start_server()
    image = seven()
    try:
        connection = socket.create_connection(("127.0.0.1", port_of(url)), timeout=20)
        connection.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            + f"Content-Length: {len(image)}\r\n\r\n".encode()
            + image[:200]
        )
        time.sleep(0.3)  # The request is in flight, waiting for the rest of its body.
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):  # No longer accepting.
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=2).close()
        connection.sendall(image[200:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
        connection.close()
    finally:
        if process.poll() is None and not reply:
            process.kill()
        out, err = process.communicate(timeout=30)  # The one SIGTERM stops it.
    code = process.returncode
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["label"] == 7
    assert code == 0 and "stopped" in out and "Traceback" not in err, err


def worker_pids(parent: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def python_workers(parent: int) -> set[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    workers = set()
    for pid in worker_pids(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"resource_tracker" not in cmdline.read():
                    workers.add(pid)
        except OSError:
            continue
    return workers


def connections_held(pids: set[int], port: int, state: str = "01") -> dict[int, int]:
    """How many sockets on ``port`` each process holds: established (01) or listening (0A)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
                inodes.add(f"socket:[{fields[9]}]")
    held = {}
    for pid in pids:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        held[pid] = sum(link in inodes for link in links)
    return held


def test_connections_opened_while_a_worker_is_busy_are_not_all_left_to_the_other():
    """A client's pool of connections, opened while one worker is busy (stopped here), is
    spread over both: on one shared socket the free worker would accept every one of them."""
    process, url = start_server("--workers", "2")
    connections = []
    busy = None
    try:
        port = port_of(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # Both workers started and listening.
            listening = connections_held(python_workers(process.pid), port, "0A")
            if len(listening) == 2 and min(listening.values()) >= 1:
                break
            time.sleep(0.2)
        busy = min(python_workers(process.pid))
        os.kill(busy, signal.SIGSTOP)
        connections = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(16)]
        for connection in connections:
            connection.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        os.kill(busy, signal.SIGCONT)
        busy = None
        for connection in connections:  # Each answered: each has been accepted.
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        held = connections_held(python_workers(process.pid), port)
        assert sum(held.values()) == 16 and min(held.values()) >= 1, held
    finally:
        if busy is not None:
            os.kill(busy, signal.SIGCONT)
        for connection in connections:
            connection.close()
        code, out, err = stop_server(process)
    assert code == 0 and "stopped" in out, err


def exited(pid: int) -> bool:
    """Whether every thread of ``pid`` has exited, and so closed its files (sockets included):
    the process shows as a zombie as soon as its main thread has, while the others may still
    be closing them."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return False
        except OSError:  # Gone meanwhile.
            continue
    return True


def test_a_killed_worker_is_replaced_and_metrics_sum_the_workers():
    process, url = start_server("--workers", "2")
    try:
        port = port_of(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # Both listening: a worker still starting is not.
            listening = connections_held(python_workers(process.pid), port, "0A")
            if len(listening) == 2 and min(listening.values()) >= 1:
                break
            time.sleep(0.2)
        workers = python_workers(process.pid)
        assert len(workers) == 2
        assert min(connections_held(workers, port, "0A").values()) >= 1
        for _ in range(6):
            assert post(url, seven())["label"] == 7
        key = (("method", "POST"), ("route", "/api/predict"), ("status", "200"))
        # A request is counted just after its answer: wait until all six are, so the kill
        # below cannot land between an answer and its count.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "metrics", timeout=10) as answer:
                if samples(answer.read().decode(), "mnistlab_http_requests_total")[key] >= 6:
                    break
            time.sleep(0.1)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        # Dead (a zombie until the supervisor reaps it): its socket has left the port. A
        # connection that reaches a worker in the instant it dies is reset with it.
        while not exited(victim):
            time.sleep(0.01)
        for _ in range(6):  # The other worker answers meanwhile.
            assert post(url, seven())["label"] == 7
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = python_workers(process.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.3)
        assert len(now) == 2 and victim not in now
        # /metrics sums every worker's counts, the dead one's included.
        with urllib.request.urlopen(url + "metrics", timeout=10) as answer:
            text = answer.read().decode()
        counted = samples(text, "mnistlab_http_requests_total")
        assert counted[key] == 12
    finally:
        code, out, err = stop_server(process)
    assert code == 0 and "stopped" in out, err

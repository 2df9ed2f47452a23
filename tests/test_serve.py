"""`mnistlab serve`: the API through FastAPI's test client, and the command as a user starts it."""

import base64
import io
import json
import socket
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab import __version__, runs
from mnistlab.images import load_image, normalize_digit
from mnistlab.predict import Predictor, pretrained_dir
from mnistlab.serve import MAX_BATCH_FILES, ServeOptions, create_app
from tests.helpers import (
    BLANK,
    assert_error,
    bomb_png,
    drawing,
    png,
    run_cli,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_run(threads=1)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(ServeOptions(), predictor)) as test_client:
        yield test_client


# --- Routes ------------------------------------------------------------------------------------


def test_health_ready_and_model(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/api/ready").json() == {"status": "ready"}
    info = client.get("/api/model").json()
    metrics = runs.read_json(pretrained_dir(), runs.METRICS_FILE)
    assert info["name"] == metrics["model"] == runs.read_config(pretrained_dir()).model
    assert info["test_accuracy"] == metrics["test"]["accuracy"] >= 0.99
    assert info["parameters"] == metrics["parameters"] > 0
    assert info["engine"] == "onnxruntime" and info["mnistlab_version"] == __version__


def test_ready_waits_for_the_model(predictor):
    app = create_app(ServeOptions(), predictor)
    with TestClient(app) as started:  # the lifespan ran a first inference
        assert started.get("/api/ready").status_code == 200
    app.state.ready = False
    assert_error(TestClient(app).get("/api/ready"), 503, "loading")


def test_the_page_and_its_files_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert (
        "<canvas" in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    )
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
        assert asset in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert "pixelated" in client.get("/static/style.css").text


def test_uptime_checkers_may_ask_with_head(client):
    for path in ("/", "/api/health"):
        assert client.head(path).status_code == 200


def test_openapi_documents_routes_and_errors(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for route in ("/api/predict", "/api/predict/batch", "/api/health", "/api/ready", "/api/model"):
        assert route in paths
    single = paths["/api/predict"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(single["responses"])
    assert {"multipart/form-data", "image/png", "image/jpeg"} <= set(
        single["requestBody"]["content"]
    )
    assert client.get("/docs").status_code == 200


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope"), 404, "/docs")
    assert_error(client.get("/api/predict"), 405, "Method Not Allowed")


# --- Predictions -------------------------------------------------------------------------------


@pytest.mark.parametrize("digit", ["7", "1", "0"])
def test_drawings_are_read(client, digit):
    answer = client.post(
        "/api/predict", files={"file": ("canvas.png", drawing(digit), "image/png")}
    ).json()
    assert answer["label"] == int(digit) and answer["rejected"] is None
    assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-4
    assert answer["confidence"] == max(answer["probabilities"]) and answer["file"] == "canvas.png"


def test_preview_is_what_the_model_saw(client):
    data = drawing("7", offset=(50, -30))  # off-centre: the preview is centred anyway
    answer = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"}).json()
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["preview_png_base64"]))))
    assert seen.shape == (28, 28) and seen.dtype == np.uint8
    assert np.array_equal(seen, normalize_digit(load_image(data)))
    assert answer["file"] is None and answer["label"] == 7


def test_raw_body_and_multipart_agree(client):
    data = drawing("1", offset=(-60, 20))
    raw = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"}).json()
    upload = client.post("/api/predict", files={"file": ("a.png", data, "image/png")}).json()
    raw.pop("file"), upload.pop("file")
    assert raw == upload


def test_api_and_cli_give_the_same_numbers(client, capsys, tmp_path):
    photo = Image.open(io.BytesIO(drawing("7"))).convert("RGB").resize((400, 400))
    photo = Image.eval(photo, lambda value: 230 - value * 200 // 255)  # dark ink on grey paper
    photo.save(tmp_path / "photo.jpg", quality=85)
    (tmp_path / "canvas.png").write_bytes(drawing("0", offset=(30, 0)))
    (tmp_path / "blank.png").write_bytes(BLANK)
    code, out, _ = run_cli(capsys, "predict", "--json", *sorted(tmp_path.iterdir()))
    assert code == 0
    from_cli = [json.loads(line) for line in out.splitlines()]
    assert len(from_cli) == 3
    for expected in from_cli:
        path = expected.pop("file")
        answer = client.post("/api/predict", files={"file": (path, Path(path).read_bytes())}).json()
        assert answer.pop("file") == path
        assert answer.pop("preview_png_base64") is None or expected["rejected"] is None
        assert set(answer) == set(expected)
        assert answer["label"] == expected["label"] and answer["rejected"] == expected["rejected"]
        assert np.allclose(answer["probabilities"], expected["probabilities"], atol=1e-6)
    assert (
        from_cli[0]["label"] is None and "no digit-like ink" in from_cli[0]["rejected"]
    )  # blank.png


def test_rejection_contract_is_the_same_as_the_cli(client, capsys, tmp_path):
    """A readable image without a digit: 200, label null, rejected says why (CLI: exit 0)."""
    answer = client.post("/api/predict", content=BLANK, headers={"Content-Type": "image/png"})
    assert answer.status_code == 200
    assert answer.json() == {
        "file": None,
        "label": None,
        "confidence": None,
        "probabilities": [],
        "uncertain": False,
        "rejected": answer.json()["rejected"],
        "not_digit": None,
        "preview_png_base64": None,
    }
    assert answer.json()["rejected"].startswith("no digit-like ink")


def test_not_sure_keeps_the_best_guess_flagged(predictor):
    with TestClient(create_app(ServeOptions(min_confidence=1.01), predictor)) as strict:
        answer = strict.post(
            "/api/predict", content=drawing("7"), headers={"Content-Type": "image/png"}
        ).json()
    assert answer["label"] == 7 and answer["uncertain"] is True and answer["rejected"] is None
    assert answer["confidence"] == max(answer["probabilities"]) and answer["preview_png_base64"]


def test_an_upload_is_parsed_once(client, monkeypatch):
    """The header read to choose the event loop or a thread is the one the pixels come from."""
    opened = []
    real = Image.open

    def counting(*args, **kwargs):
        opened.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    for data in (drawing("7"), drawing("7", side=1200)):
        answer = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"})
        assert answer.json()["label"] == 7
    assert len(opened) == 2


# --- Bad input: always a 4xx with one line of JSON, never a 5xx ---------------------------------


@pytest.mark.parametrize(
    "content, content_type, status, fragment",
    [
        (b"", "image/png", 400, "empty body"),
        (b"hello, I am text", "image/png", 422, "not a supported image"),
        (drawing("7")[:300], "image/png", 422, "truncated"),
        (bomb_png(), "image/png", 422, "decompression bomb"),
        (b"hello", "text/plain", 415, "image/png"),
        (b"hello", "", 415, "no Content-Type"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"',
            "multipart/form-data; boundary=xyz",
            400,
            "malformed multipart",
        ),
        (b"anything", "multipart/form-data", 400, "no boundary"),
    ],
)
def test_bad_input_is_a_4xx_with_one_line(client, content, content_type, status, fragment):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/predict", content=content, headers=headers)
    assert_error(response, status, fragment)


@pytest.mark.parametrize(
    "declared", ["image/jpg", "image/x-png", "image/x-ms-bmp", "application/octet-stream"]
)
def test_a_raw_body_is_read_whatever_image_type_it_declares(client, declared):
    answer = client.post("/api/predict", content=drawing("7"), headers={"Content-Type": declared})
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] == 7


def test_a_post_without_a_body_is_a_400_whatever_its_type(client):
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/json"}):
        assert_error(client.post("/api/predict", headers=headers), 400, "empty body")
    assert_error(client.post("/api/predict/batch"), 400, "empty body")


def test_malformed_multipart_is_explained_without_the_parsers_words(client):
    for body in (b"garbage", b"--xyz\r\nbad header line\r\n\r\nx\r\n--xyz--\r\n"):
        response = client.post(
            "/api/predict",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        )
        assert_error(response, 400, "malformed multipart request: the body does not follow")
        assert "character" not in response.json()["error"]
        assert "index" not in response.json()["error"]


def test_a_client_that_disconnects_mid_upload_is_one_line_in_the_log(predictor, caplog):
    """No traceback, and no exception out of the app (uvicorn would log it as one)."""
    import anyio

    app = create_app(ServeOptions(), predictor)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"image/png"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": app,
    }
    messages = iter(
        [{"type": "http.request", "body": b"\0" * 1000, "more_body": True}]
        + [{"type": "http.disconnect"}] * 3
    )

    async def receive():
        return next(messages)

    async def send(message):
        pass

    with caplog.at_level("INFO"):
        anyio.run(app, scope, receive, send)
    logged = [record for record in caplog.records if "disconnected" in record.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is None
    assert "/api/predict" in logged[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info]


def test_empty_or_missing_upload_in_multipart(client):
    assert_error(
        client.post("/api/predict", files={"file": ("a.png", b"", "image/png")}), 400, "0 bytes"
    )
    assert_error(
        client.post("/api/predict", data={"other": "x"}, files={"x": ("", b"")}),
        400,
        "field 'file'",
    )
    two = [("file", ("a.png", drawing("1"))), ("file", ("b.png", drawing("7")))]
    assert_error(client.post("/api/predict", files=two), 400, "received 2")


def test_upload_limit_from_content_length_and_while_streaming(predictor):
    with TestClient(create_app(ServeOptions(max_upload_mb=0.01), predictor)) as small:
        big = b"\0" * 20_000
        assert_error(
            small.post("/api/predict", content=big, headers={"Content-Type": "image/png"}),
            413,
            "limit is 10,485 bytes",
        )
        streamed = small.post(
            "/api/predict", content=iter([big[:8000]] * 3), headers={"Content-Type": "image/png"}
        )
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "limit is 10,485 bytes")
        assert_error(
            small.post("/api/predict", files={"file": ("a.png", big)}), 413, "--max-upload-mb"
        )
        assert (
            small.post(
                "/api/predict", content=drawing("7"), headers={"Content-Type": "image/png"}
            ).json()["label"]
            == 7
        )


def test_an_unexpected_failure_on_odd_input_is_a_4xx(client, monkeypatch):
    import mnistlab.predict

    def broken(image):
        raise ValueError("some library choked")

    monkeypatch.setattr(mnistlab.predict, "normalize_digit", broken)
    response = client.post(
        "/api/predict", content=drawing("7"), headers={"Content-Type": "image/png"}
    )
    assert_error(response, 422, "could not be processed")
    assert "ValueError" not in response.json()["error"]  # the log says it; people need not


def test_a_file_that_is_not_an_image_is_told_in_words(client):
    response = client.post(
        "/api/predict", files={"file": ("notes.txt", b"hello, I am text", "text/plain")}
    )
    assert_error(response, 422, "this file is not a supported image; send a PNG, JPEG")


def test_uploads_never_touch_the_disk(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to disk")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    photo = np.random.default_rng(0).integers(0, 255, (1200, 1200), dtype=np.uint8)  # > 1 MB
    data = png(Image.fromarray(photo))
    assert len(data) > 1_000_000
    response = client.post("/api/predict", files={"file": ("noise.png", data, "image/png")})
    assert response.status_code == 200, response.text


def test_cors_only_when_asked(predictor, client):
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in client.options("/api/predict", headers=preflight).headers
    )
    cors = ServeOptions(cors_origins=("https://example.org",))
    with TestClient(create_app(cors, predictor)) as open_client:
        allowed = open_client.options("/api/predict", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"


# --- Batch -------------------------------------------------------------------------------------


def test_batch_answers_each_file_in_order(client):
    files = [
        ("files", ("seven.png", drawing("7"), "image/png")),
        ("files", ("broken.png", b"not an image", "image/png")),
        ("files", ("blank.png", BLANK, "image/png")),
        ("files", ("empty.png", b"", "image/png")),
        ("files", ("one.png", drawing("1"), "image/png")),
    ]
    results = client.post("/api/predict/batch", files=files).json()["results"]
    assert [r["file"] for r in results] == [
        "seven.png",
        "broken.png",
        "blank.png",
        "empty.png",
        "one.png",
    ]
    assert results[0]["label"] == 7 and results[4]["label"] == 1
    assert set(results[1]) == {"file", "error"} and "not a supported image" in results[1]["error"]
    assert results[2]["label"] is None and results[2]["rejected"].startswith("no digit-like ink")
    assert "0 bytes" in results[3]["error"]
    single = client.post("/api/predict", files={"file": ("seven.png", drawing("7"))}).json()
    assert np.allclose(results[0]["probabilities"], single["probabilities"], atol=1e-6)


def test_batch_limits(client):
    too_many = [("files", (f"{i}.png", BLANK)) for i in range(MAX_BATCH_FILES + 1)]
    assert_error(
        client.post("/api/predict/batch", files=too_many), 400, f"at most {MAX_BATCH_FILES}"
    )
    assert_error(
        client.post("/api/predict/batch", data={"a": "b"}, files={"x": ("", b"")}), 400, "no files"
    )
    assert_error(
        client.post("/api/predict/batch", content=BLANK, headers={"Content-Type": "image/png"}),
        415,
        "multipart",
    )


# --- The command -------------------------------------------------------------------------------


def test_serve_command_starts_answers_and_stops_on_ctrl_c():
    process, url = start_server("--max-upload-mb", "1")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/health", timeout=10) as health:
            assert json.load(health) == {"status": "ok"}
        request = urllib.request.Request(
            url + "api/predict", data=drawing("7"), headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["label"] == 7
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert_stream_refused_early(port, limit=1024 * 1024)
    finally:
        code, out, err = stop_server(process)
    assert code == 0 and "stopped" in out and "Traceback" not in err, err


def assert_stream_refused_early(port: int, limit: int) -> None:
    """A chunked upload that never ends gets its 413 while it is still being sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"10000\r\n" + b"\0" * 0x10000 + b"\r\n"
        sent = 0
        connection.settimeout(0.05)
        reply = b""
        while sent < 200 * limit and not reply:
            try:
                connection.sendall(chunk)
                sent += 0x10000
                reply = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # the server closed the connection after answering
                break
        connection.settimeout(10)
        try:
            reply += connection.recv(4096)
        except OSError:
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 10 * limit


def test_serve_command_with_worker_processes():
    process, url = start_server("--workers", "2")
    try:
        request = urllib.request.Request(
            url + "api/predict", data=drawing("1"), headers={"Content-Type": "image/png"}
        )
        for _ in range(4):
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert json.load(answer)["label"] == 1
    finally:
        code, out, err = stop_server(process)
    assert code == 0 and "stopped" in out and "Traceback" not in err, err


def test_options_reach_worker_processes_whole():
    options = ServeOptions(
        run_dir=pretrained_dir(),
        workers=3,
        max_upload_mb=2.5,
        cors_origins=("https://example.org",),
        min_confidence=0.7,
    )
    assert ServeOptions.from_json(options.to_json()) == options


def test_serve_command_busy_port_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = run_cli(capsys, "serve", "--port", taken.getsockname()[1])
    assert (
        code == 1
        and err.startswith("error: cannot listen on 127.0.0.1:")
        and len(err.splitlines()) == 1
    )


# --- `mnistlab predict` says a file's path once --------------------------------------------------


def test_predict_error_names_the_file_once(capsys, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for name, reason in (
        ("empty.png", "empty file (0 bytes)"),
        ("text.png", "not a supported image"),
    ):
        code, out, err = run_cli(capsys, "predict", "--json", tmp_path / name)
        assert code == 1 and out == ""
        assert err.count(str(tmp_path / name)) == 1 and err.startswith(
            f"error: {tmp_path / name}: {reason}"
        )


def test_readme_documents_the_json_fields_the_cli_and_api_give(client, capsys, tmp_path):
    """The README's table of `--json` fields is what both the CLI and the API print."""
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("`--json` prints one object per image", 1)[1].split("\n\n", 2)[1]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    (tmp_path / "seven.png").write_bytes(drawing("7"))
    code, out, _ = run_cli(capsys, "predict", "--json", tmp_path / "seven.png")
    assert code == 0 and list(json.loads(out)) == documented
    answer = client.post("/api/predict", files={"file": ("seven.png", drawing("7"))}).json()
    assert list(answer) == documented + ["preview_png_base64"]
    assert '"rejected": "...", "label": null' in readme and "`preview_png_base64`" in readme


@pytest.mark.slow
def test_a_run_without_onnx_is_served_with_keras(tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(pretrained_dir(), run_dir, ignore=shutil.ignore_patterns("model.onnx"))
    with TestClient(create_app(ServeOptions(), Predictor.from_run(run_dir))) as keras_client:
        assert keras_client.get("/api/model").json()["engine"] == "keras"
        answer = keras_client.post(
            "/api/predict", content=drawing("7"), headers={"Content-Type": "image/png"}
        )
        assert answer.json()["label"] == 7


def test_image_work_runs_on_a_small_thread_pool(client):
    from anyio import to_thread

    from mnistlab.serve import IMAGE_THREADS

    limit = client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens)
    assert limit == IMAGE_THREADS


def test_a_canvas_is_read_on_the_event_loop_and_a_photo_in_a_thread(client, monkeypatch):
    import mnistlab.serve.app

    handed_over = []
    real = mnistlab.serve.app._in_a_thread

    async def recording(state, work, *args):
        handed_over.extend(arg.size for arg in args if isinstance(arg, Image.Image))
        return await real(state, work, *args)

    monkeypatch.setattr(mnistlab.serve.app, "_in_a_thread", recording)
    canvas, photo = drawing("7"), drawing("7", side=1200)
    for data in (canvas, photo):
        answer = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"})
        assert answer.json()["label"] == 7
    assert handed_over == [(1200, 1200)]  # the photo, not the canvas

"""``mnistlab serve``: the draw-a-digit page and a JSON API, as one FastAPI app.

Thin on purpose: every image goes through ``predict.predict_bytes`` / ``predict.read_digit``,
the same path ``mnistlab predict`` uses, so the page, the API and the CLI cannot disagree.

Uploads are read by this module, not by Starlette's form parser: the body is streamed with a
size limit (413 as soon as it is exceeded) and multipart is parsed in memory, because
Starlette spools large parts to temporary files and nothing a client sends may touch the disk.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import python_multipart
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnistlab import __version__, images, runs
from mnistlab.errors import ImageError, MnistlabError, RunError
from mnistlab.predict import (
    DEFAULT_MIN_CONFIDENCE,
    FileError,
    Prediction,
    Predictor,
    classify,
    predict_bytes,
    read_digit,
)

DEFAULT_MAX_UPLOAD_MB = 10.0
# Threads reading images at once, per process (Starlette's default is 40). Image work is
# CPU-bound and mostly holds the GIL, so more threads add memory (a malloc arena each) and
# contention, not speed; a few let one photo pass another that is being decoded.
IMAGE_THREADS = 4
# Handing an image to a thread costs about 1 ms on a 2-core machine, a fifth of a whole canvas
# request, so an image this small (a canvas; read in a few ms) is read on the event loop, and
# larger ones in a thread so that the loop keeps answering meanwhile.
INLINE_PIXELS = 512 * 512
MAX_BATCH_FILES = 64  # One batch request is one model call; more files belong in more requests.
# Raw bodies with these types are decoded directly; Pillow recognises the format itself.
IMAGE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/bmp",
    "image/tiff",
    "image/webp",
    "image/gif",
    "application/octet-stream",
)
ACCEPTED = "a multipart/form-data upload (field 'file') or a raw body with Content-Type image/png, image/jpeg, image/bmp, image/tiff, image/webp or image/gif"
# The page loads nothing from elsewhere; previews and uploads are shown from data: and blob: URLs.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"
)

logger = logging.getLogger("mnistlab.serve")
# `mnistlab serve --workers N` hands its options to each worker process through this variable.
OPTIONS_VARIABLE = "MNISTLAB_SERVE_OPTIONS"


def web_dir() -> Path:
    """The page's static files, shipped inside the package."""
    return Path(str(resources.files("mnistlab") / "web"))


class ServeError(MnistlabError):
    """The server cannot start, e.g. its port is taken."""


class BadRequest(Exception):
    """A request the API refuses: answered as ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# --- Response schemas (for the OpenAPI page at /docs) ----------------------------------------


class ErrorResponse(BaseModel):
    error: str = Field(description="One line: what was wrong and what is accepted.")


class PredictionResponse(BaseModel):
    file: str | None = Field(description="The upload's file name; null for a raw body.")
    label: int | None = Field(description="The digit read, 0-9; null when rejected.")
    confidence: float | None = Field(
        description="Probability of the most likely digit; null when no digit was found."
    )
    probabilities: list[float] = Field(
        description="Ten probabilities, for digits 0-9; empty when no digit was found."
    )
    rejected: str | None = Field(
        description="Why no digit is reported (no digit-like ink, or not sure); null otherwise."
    )
    preview_png_base64: str | None = Field(
        description="The 28x28 image the model saw, as a base64 PNG; null when it saw none."
    )


class BatchEntry(BaseModel):
    file: str | None
    label: int | None = None
    confidence: float | None = None
    probabilities: list[float] = []
    rejected: str | None = None
    preview_png_base64: str | None = None
    error: str | None = Field(
        None, description="Set, alone, when this file is not a readable image."
    )


class BatchResponse(BaseModel):
    results: list[BatchEntry] = Field(description="One entry per file, in the order sent.")


class ModelInfo(BaseModel):
    name: str
    run: str
    dataset: str | None
    test_accuracy: float | None
    parameters: int | None
    engine: str
    min_confidence: float
    max_upload_mb: float
    mnistlab_version: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request: empty body, broken multipart, or no/too many files.",
        413: "The body is larger than the server's --max-upload-mb.",
        415: "Unsupported Content-Type. " + ACCEPTED[0].upper() + ACCEPTED[1:] + ".",
        422: "Not a readable image: not an image, truncated, or too many pixels.",
    }
    return {
        status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses
    }


def _upload_body(batch: bool) -> dict[str, Any]:
    files = (
        {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}
        if batch
        else {"file": {"type": "string", "format": "binary"}}
    )
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": files, "required": list(files)}
        }
    }
    if not batch:
        for media_type in IMAGE_TYPES:
            content[media_type] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


# --- Reading the request ----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(
                400, f"Content-Length must be a number of bytes; received {declared!r}"
            )
        if int(declared) > limit:
            raise BadRequest(413, _too_large(limit, int(declared)))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, _too_large(limit, None))
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise BadRequest(400, f"empty body: send {ACCEPTED}")
    return body


def _too_large(limit: int, size: int | None) -> str:
    received = f"{size:,} bytes" if size is not None else "more than that"
    return f"upload too large: the limit is {limit:,} bytes (--max-upload-mb); received {received}"


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    """Parts of a multipart/form-data body, in memory: (field name, file name, content)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest(400, "malformed multipart request: Content-Type has no boundary")
    parts: list[tuple[str, str | None, bytes]] = []
    current: dict[str, Any] = {}
    finished = []

    def on_part_begin() -> None:
        current.update(headers={}, field=b"", value=b"", data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current["value"] += data[start:end]

    def on_header_end() -> None:
        current["headers"][current["field"].lower()] = current["value"]
        current["field"], current["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"].append(data[start:end])

    def on_part_end() -> None:
        disposition = current["headers"].get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        parts.append(
            (
                name,
                None if filename is None else filename.decode("utf-8", "replace"),
                b"".join(current["data"]),
            )
        )

    parser = python_multipart.MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": lambda: finished.append(True),
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise BadRequest(400, f"malformed multipart request ({error})") from None
    if not finished:
        raise BadRequest(400, "malformed multipart request: it ends before its closing boundary")
    return parts


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _unsupported(media_type: str, accepted: str) -> BadRequest:
    received = media_type or "no Content-Type"
    return BadRequest(415, f"unsupported content type {received!r}: send {accepted}")


# --- Answers ------------------------------------------------------------------------------------


def to_response(prediction: Prediction) -> dict[str, Any]:
    """``mnistlab predict --json``'s fields plus the preview the model saw."""
    png = prediction.preview_png()
    answer = prediction.to_dict()
    answer["preview_png_base64"] = None if png is None else base64.b64encode(png).decode("ascii")
    return answer


def _safely(work, *args):
    """Run image work; a crash on odd input is the input's fault here, so it is a 422."""
    try:
        return work(*args)
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - an unexpected decoder or normaliser failure.
        logger.exception("image processing failed")
        raise ImageError(f"the image could not be processed ({type(error).__name__})") from None


def create_app(
    predictor: Predictor,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    cors_origins: tuple[str, ...] = (),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> FastAPI:
    """The app around one loaded ``predictor``: the page at ``/`` and the API under ``/api``."""
    limit = int(max_upload_mb * 1024 * 1024)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        to_thread.current_default_thread_limiter().total_tokens = IMAGE_THREADS
        # One inference before the first request, so /api/ready means "answers quickly".
        await run_in_threadpool(predictor.probabilities, np.zeros((1, 28, 28), dtype=np.uint8))
        app.state.ready = True
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="mnistlab",
        version=__version__,
        description='Read handwritten digits. Every error is a 4xx with `{"error": "..."}`.',
    )
    app.state.ready = False

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(ImageError)
    async def bad_image(request: Request, error: ImageError) -> JSONResponse:
        message = str(error)
        if "expected" not in message:
            message += "; send a PNG, JPEG, BMP, TIFF, WebP or GIF image"
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = (
            "no such page; the API is under /api, its description at /docs"
            if error.status_code == 404
            else str(error.detail)
        )
        return JSONResponse(
            {"error": message}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": f"invalid request: {error.errors()[0].get('msg', '')}"}, status_code=400
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            web_dir() / "index.html", headers={"Content-Security-Policy": PAGE_POLICY}
        )

    app.mount("/static", StaticFiles(directory=web_dir()), name="static")

    @app.get("/api/health", summary="The process is alive")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/api/ready",
        summary="The model is loaded and has answered",
        responses={503: {"model": ErrorResponse}},
    )
    def ready() -> JSONResponse:
        if not app.state.ready:
            return JSONResponse({"error": "the model is still loading"}, status_code=503)
        return JSONResponse({"status": "ready"})

    metrics = _read_metrics(predictor.run_dir)

    @app.get("/api/model", summary="The model in use", response_model=ModelInfo)
    def model() -> dict[str, Any]:
        return {
            "name": metrics.get("model") or predictor.run_dir.name,
            "run": predictor.run_dir.name,
            "dataset": metrics.get("dataset"),
            "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
            "parameters": metrics.get("parameters"),
            "engine": predictor.engine,
            "min_confidence": min_confidence,
            "max_upload_mb": max_upload_mb,
            "mnistlab_version": __version__,
        }

    @app.post(
        "/api/predict",
        summary="Read the digit in one image",
        description=f"Send {ACCEPTED}. A readable image without a digit (or one the model is "
        "not sure about) is a 200 answer with `rejected` set and `label` null.",
        responses={200: {"model": PredictionResponse}, **_errors(400, 413, 415, 422)},
        openapi_extra=_upload_body(batch=False),
    )
    async def predict(request: Request) -> JSONResponse:
        media_type = _media_type(request)
        if media_type == "multipart/form-data":
            body = await read_body(request, limit)
            files = [
                part
                for part in parse_multipart(body, request.headers["content-type"])
                if part[1] is not None or part[0] == "file"
            ]
            if len(files) != 1:
                raise BadRequest(
                    400, f"expected one file in the multipart field 'file'; received {len(files)}"
                )
            _, filename, data = files[0]
        elif media_type in IMAGE_TYPES:
            data, filename = await read_body(request, limit), None
        else:
            raise _unsupported(media_type, ACCEPTED)
        if not data:
            raise BadRequest(400, "empty file: the upload holds 0 bytes")
        arguments = (predict_bytes, data, predictor, min_confidence, filename)
        if (images.pixel_count(data) or 0) <= INLINE_PIXELS:
            prediction = _safely(*arguments)
        else:
            prediction = await run_in_threadpool(_safely, *arguments)
        return JSONResponse(to_response(prediction))

    @app.post(
        "/api/predict/batch",
        summary="Read the digits in several images",
        description=f"Send up to {MAX_BATCH_FILES} files as multipart/form-data (field 'files'). "
        "Each file gets its own entry, in order; a file that is not a readable image gets "
        '`{"file": ..., "error": ...}` and does not fail the others.',
        responses={200: {"model": BatchResponse}, **_errors(400, 413, 415)},
        openapi_extra=_upload_body(batch=True),
    )
    async def predict_batch(request: Request) -> JSONResponse:
        media_type = _media_type(request)
        if media_type != "multipart/form-data":
            raise _unsupported(
                media_type, "multipart/form-data with the images in the field 'files'"
            )
        body = await read_body(request, limit)
        files = [
            part
            for part in parse_multipart(body, request.headers["content-type"])
            if part[1] is not None
        ]
        if not files:
            raise BadRequest(
                400, "no files: send the images as multipart file fields named 'files'"
            )
        if len(files) > MAX_BATCH_FILES:
            raise BadRequest(
                400, f"too many files: at most {MAX_BATCH_FILES} per request; received {len(files)}"
            )
        results = await run_in_threadpool(_batch, files, predictor, min_confidence)
        return JSONResponse({"results": results})

    return app


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port), bound here rather than by uvicorn so
    that a busy port is one clear error and the chosen port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ServeError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); pick another --port or --host"
        ) from None
    return listener


def url_of(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}/" if listener.family == socket.AF_INET6 else f"http://{host}:{port}/"


def run(
    listener: socket.socket,
    predictor: Predictor,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    cors_origins: tuple[str, ...] = (),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    workers: int = 1,
) -> None:
    """Serve on ``listener`` with uvicorn until Ctrl-C (or SIGTERM); returns after a clean stop.

    With several workers, each process loads its own copy of the predictor's run.
    """
    import uvicorn

    settings = dict(log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    try:
        if workers == 1:
            app = create_app(predictor, max_upload_mb, cors_origins, min_confidence)
            uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[listener])
        else:
            from uvicorn.supervisors import Multiprocess

            os.environ[OPTIONS_VARIABLE] = json.dumps(
                {
                    "model": str(predictor.run_dir),
                    "max_upload_mb": max_upload_mb,
                    "cors": list(cors_origins),
                    "min_confidence": min_confidence,
                }
            )
            config = uvicorn.Config(
                f"{__name__}:app_from_environment", factory=True, workers=workers, **settings
            )
            Multiprocess(config, sockets=[listener]).run()
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raises Ctrl-C.
        pass


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process, built from the options `mnistlab serve` set."""
    options = json.loads(os.environ[OPTIONS_VARIABLE])
    predictor = Predictor.from_run(options["model"], threads=1)
    return create_app(
        predictor, options["max_upload_mb"], tuple(options["cors"]), options["min_confidence"]
    )


def _batch(
    files: list[tuple[str, str | None, bytes]], predictor: Predictor, min_confidence: float
) -> list[dict]:
    """Read every file, classify the readable ones in one model call, answer in order."""
    read: list[Prediction | FileError] = []
    for _, filename, data in files:
        try:
            read.append(
                _safely(read_digit, data, filename)
                if data
                else FileError(filename, "empty file (0 bytes)")
            )
        except ImageError as error:
            read.append(FileError(filename, str(error)))
    classify([item for item in read if isinstance(item, Prediction)], predictor, min_confidence)
    return [
        {"file": item.file, "error": item.message}
        if isinstance(item, FileError)
        else to_response(item)
        for item in read
    ]


def _read_metrics(run_dir: Path) -> dict:
    try:
        return runs.read_json(run_dir, runs.METRICS_FILE)
    except RunError:  # A run without metrics still serves; /api/model says less.
        return {}

"""The FastAPI app: the draw-a-digit page at ``/`` and the JSON API under ``/api``.

Thin on purpose: every image goes through ``predict.read_digit`` and ``predict.classify``, the
path ``mnistlab predict`` takes, so the page, the API and the CLI cannot disagree (a number
goes through ``reading.read_number``, as in ``mnistlab read``). The routes
are module-level; what they share (predictor, options, the model's metrics) is on
``app.state``, set by ``create_app``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mnistlab import __version__, heap, runs
from mnistlab.errors import RunError
from mnistlab.predict import Prediction, Predictor
from mnistlab.reading import MAX_DIGITS, NumberReading
from mnistlab.serve import traffic, uploads
from mnistlab.serve.options import ServeOptions
from mnistlab.serve.schemas import (
    ACCEPTED,
    ApiError,
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    NumberResponse,
    PredictionResponse,
    errors,
    upload_body,
)

# Threads reading images at once, per process (Starlette's default is 40). Image work is
# CPU-bound and mostly holds the GIL, so more threads add memory (a malloc arena each) and
# contention, not speed; a few let one photo pass another that is being decoded.
IMAGE_THREADS = 4
# They share this many malloc arenas: with one each, the freed fragments of the photos each
# thread decoded add up, and the worker's memory wanders by tens of MiB.
MALLOC_ARENAS = 2
# Handing an image to a thread costs about 1 ms on a 2-core machine, a fifth of a whole canvas
# request, so an image this small (a canvas; read in a few ms) is read on the event loop, and
# larger ones in a thread so that the loop keeps answering meanwhile.
INLINE_PIXELS = 512 * 512
# The page loads nothing from elsewhere; previews and uploads are shown from data: and blob: URLs.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"
)

# Swagger UI for /docs, from a pinned package rather than a CDN: the docs work offline too.
DOCS_ASSETS = "/docs-assets"

router = APIRouter()


def web_dir() -> Path:
    """The page's static files, shipped inside the package."""
    return Path(str(resources.files("mnistlab") / "web"))


def docs_dir() -> Path:
    """Swagger UI's script and style sheet, shipped by the fastapi-offline package."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def create_app(options: ServeOptions, predictor: Predictor | None = None) -> FastAPI:
    """The app serving ``predictor`` (default: loaded from ``options.run_dir``) as ``options`` say.

    Args:
        options: limits, CORS origins and the confidence threshold; ``run_dir`` when no
            ``predictor`` is given.
        predictor: a loaded model to share, e.g. the one the command loaded to check the run.
    Returns:
        The app; its lifespan runs one inference before /api/ready answers 200.
    """
    heap.limit_arenas(MALLOC_ARENAS)  # before the image threads start
    if predictor is None:
        # One thread per call: many small requests in parallel beat one request on all cores.
        predictor = Predictor.from_run(options.run_dir, threads=1)
    app = FastAPI(
        lifespan=_lifespan,
        title="mnistlab",
        version=__version__,
        description='Read handwritten digits. Every error is a 4xx with `{"error": "..."}`,'
        " except 503 (busy: retry after `Retry-After` seconds).",
        docs_url=None,  # Served by `docs` below, without a CDN.
        redoc_url=None,
    )
    app.state.options = options
    app.state.predictor = predictor
    app.state.model_info = _model_info(predictor, options)
    app.state.ready = False
    app.state.metrics = traffic.Metrics()
    app.state.gate = traffic.Gate(traffic.Admission(options.max_in_flight), app.state.metrics)
    app.state.image_threads = ThreadPoolExecutor(IMAGE_THREADS, thread_name_prefix="image")
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_exception_handler(ApiError, _refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    # Outermost: a request over the bound is refused before any other work.
    app.add_middleware(
        traffic.TrafficMiddleware,
        gate=app.state.gate,
        idle_trim=traffic.IdleTrim(),
    )
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=web_dir()), name="static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_dir()), name="docs-assets")
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    to_thread.current_default_thread_limiter().total_tokens = IMAGE_THREADS
    # One inference before the first request, so /api/ready means "answers quickly".
    zeros = np.zeros((1, 28, 28), dtype=np.uint8)
    await run_in_threadpool(app.state.predictor.probabilities, zeros)
    app.state.ready = True
    # The server's HTTP protocol (serve.protocol) refuses over the bound before the app does.
    yield {traffic.GATE_STATE: app.state.gate}


def _model_info(predictor: Predictor, options: ServeOptions) -> dict[str, Any]:
    try:
        metrics = runs.Run(predictor.run_dir).read_metrics()
    except RunError:  # A run without metrics still serves; /api/model says less.
        metrics = {}
    return {
        "name": metrics.get("model") or predictor.run_dir.name,
        "run": predictor.run_dir.name,
        "dataset": metrics.get("dataset"),
        "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
        "parameters": metrics.get("parameters"),
        "engine": predictor.engine,
        "min_confidence": options.min_confidence,
        "max_upload_mb": options.max_upload_mb,
        "mnistlab_version": __version__,
    }


# --- Errors: always a 4xx with {"error": "..."} -------------------------------------------------


async def _refused(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers=error.headers)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    message = (
        "no such page; the API is under /api, its description at /docs"
        if error.status_code == 404
        else str(error.detail)
    )
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    message = f"invalid request: {error.errors()[0].get('msg', '')}"
    return JSONResponse({"error": message}, status_code=400)


async def _disconnected(request: Request, error: ClientDisconnect) -> Response:
    # A closed tab or a dropped connection, not a fault here: one line, no traceback.
    uploads.logger.warning(
        "%s %s: the client disconnected before its upload was read",
        request.method,
        request.url.path,
    )
    return Response(status_code=400)  # Nobody receives it; the request just ends.


# --- Routes -------------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
@router.head("/", include_in_schema=False)  # HEAD too, for uptime checkers.
def page() -> FileResponse:
    return FileResponse(web_dir() / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/api/health", summary="The process is alive")
@router.head("/api/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="mnistlab API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
    )


@router.get(
    "/metrics",
    summary="Metrics in the Prometheus text format",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Summed over every worker."}},
)
def metrics(request: Request) -> Response:
    body, media_type = request.app.state.metrics.exposition()
    return Response(body, media_type=media_type)


@router.get(
    "/api/ready",
    summary="The model is loaded and has answered",
    responses={503: {"model": ErrorResponse, "description": "The model is still loading."}},
)
def ready(request: Request) -> JSONResponse:
    if not request.app.state.ready:
        return JSONResponse({"error": "the model is still loading"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/api/model", summary="The model in use", response_model=ModelInfo)
def model(request: Request) -> dict[str, Any]:
    return request.app.state.model_info


@router.post(
    "/api/predict",
    summary="Read the digit in one image",
    description=f"Send {ACCEPTED}. A readable image without a digit (no ink, or not a digit)"
    " is a 200 answer with `rejected` set and `label` null; a low confidence keeps the best"
    " guess in `label` with `uncertain` true.",
    responses={200: {"model": PredictionResponse}, **errors(400, 408, 413, 415, 422, 503)},
    openapi_extra=upload_body(batch=False),
)
async def predict(request: Request) -> JSONResponse:
    state = request.app.state
    upload = await uploads.read_upload(request, state.options.upload_limit)
    image = uploads.open_upload(upload.data)
    work = (image, upload.filename, state.predictor, state.options.min_confidence)
    with state.metrics.image_seconds.time():
        if image.width * image.height <= INLINE_PIXELS:
            prediction = uploads.predict_upload(*work)
        else:
            prediction = await _in_a_thread(state, uploads.predict_upload, *work)
    state.metrics.answered(prediction)
    return JSONResponse(to_response(prediction))


@router.post(
    "/api/predict/batch",
    summary="Read the digits in several images",
    description=f"Send up to {uploads.MAX_BATCH_FILES} files as multipart/form-data (field "
    "'files'). Each file gets its own entry, in order; a file that is not a readable image gets "
    '`{"file": ..., "error": ...}` and does not fail the others.',
    responses={200: {"model": BatchResponse}, **errors(400, 408, 413, 415, 503)},
    openapi_extra=upload_body(batch=True),
)
async def predict_batch(request: Request) -> JSONResponse:
    state = request.app.state
    files = await uploads.read_batch(request, state.options.upload_limit)
    read = await _in_a_thread(
        state, uploads.predict_batch, files, state.predictor, state.options.min_confidence
    )
    for item in read:
        if isinstance(item, Prediction):
            state.metrics.answered(item)
    results = [
        to_response(item)
        if isinstance(item, Prediction)
        else {"file": item.file, "error": item.message}
        for item in read
    ]
    return JSONResponse({"results": results})


@router.post(
    "/api/read",
    summary="Read a handwritten number (1 to about 20 digits on one line)",
    description=f"Send {ACCEPTED}. The answer gives the number as `text`, and each digit with "
    "its confidence, its box `[x, y, width, height]` in the image's pixels and the 28x28 image "
    "the model saw. A readable image without a number is a 200 answer with `rejected` set and "
    "`text` null.",
    responses={200: {"model": NumberResponse}, **errors(400, 408, 413, 415, 422, 503)},
    openapi_extra=upload_body(batch=False),
)
async def read(
    request: Request,
    expect_digits: int | None = Query(
        None, ge=1, le=MAX_DIGITS, description="Read exactly this many digits."
    ),
) -> JSONResponse:
    state = request.app.state
    upload = await uploads.read_upload(request, state.options.upload_limit)
    image = uploads.open_upload(upload.data)
    work = (image, upload.filename, state.predictor, state.options.min_confidence, expect_digits)
    # A number costs several digits' work: only a small one is read on the event loop.
    if image.width * image.height <= INLINE_PIXELS // 4:
        reading = uploads.read_number_upload(*work)
    else:
        reading = await _in_a_thread(state, uploads.read_number_upload, *work)
    state.metrics.answered_number(reading)
    return JSONResponse(number_response(reading))


async def _in_a_thread(state: Any, function: Any, *args: Any) -> Any:
    """``function(*args)`` in one of the app's image threads. Straight to the executor: anyio's
    ``to_thread`` waits for two more turns of the event loop, and a turn of a busy worker's loop
    runs every canvas waiting on it (tens of ms each turn)."""
    return await asyncio.get_running_loop().run_in_executor(state.image_threads, function, *args)


def number_response(reading: NumberReading) -> dict[str, Any]:
    """``mnistlab read --json``'s fields, each digit with the preview the model saw."""
    answer = reading.to_dict()
    for digit, entry in zip(reading.digits, answer["digits"]):
        png = digit.preview_png()
        entry["preview_png_base64"] = None if png is None else base64.b64encode(png).decode()
    return answer


def to_response(prediction: Prediction) -> dict[str, Any]:
    """``mnistlab predict --json``'s fields, passed through, plus the preview the model saw."""
    png = prediction.preview_png()
    answer = prediction.to_dict()
    answer["preview_png_base64"] = None if png is None else base64.b64encode(png).decode("ascii")
    return answer

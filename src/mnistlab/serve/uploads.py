"""Reading uploads: the body under a size limit, multipart in memory, the media type, and the
image in it, decoded once.

The body is streamed with a size limit (413 as soon as it is exceeded) and multipart is parsed
in memory, not by Starlette's form parser, because that spools large parts to temporary files
and nothing a client sends may touch the disk.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import python_multipart
from fastapi import Request
from PIL import Image
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from mnistlab import images
from mnistlab.errors import ImageError, UnsupportedImage
from mnistlab.predict import FileError, Prediction, Predictor, classify, read_digit
from mnistlab.reading import NumberReading, read_number
from mnistlab.serve.options import DEFAULT_READ_TIMEOUT
from mnistlab.serve.schemas import ACCEPTED, SEND_AN_IMAGE, ApiError

MULTIPART_HINT = "send the files as a browser's form or curl -F writes them"
MAX_BATCH_FILES = 64  # One batch request is one model call; more files belong in more requests.
logger = logging.getLogger("mnistlab.serve")
# On a refusal before the whole body is read: the connection cannot carry another request.
CLOSE = {"Connection": "close"}


@dataclass
class Upload:
    """One file a client sent: its name (None for a raw body) and its bytes."""

    filename: str | None
    data: bytes


@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    data: bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 once it passes ``limit`` bytes, or 408 when it stalls
    for the app's ``read_timeout``.

    Raises:
        ApiError: 400 for a malformed Content-Length or an empty body, 408 for a stalled one,
            413 for a large one.
    """
    declared = request.headers.get("content-length")
    stream = _chunks(request)  # Starlette's stream can be iterated once: drained from here too.
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"Content-Length must be a number of bytes; received {declared!r}")
        if int(declared) > limit:
            headers = None if await _drain(request, stream, int(declared), 0, limit) else CLOSE
            raise ApiError(413, _too_large(limit, int(declared)), headers=headers)
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            headers = None if await _drain(request, stream, None, size, limit) else CLOSE
            raise ApiError(413, _too_large(limit, None), headers=headers)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise ApiError(400, f"empty body: send {ACCEPTED}")
    return body


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 408 when none comes for ``read_timeout`` seconds."""
    options = getattr(request.app.state, "options", None)
    timeout = options.read_timeout if options is not None else DEFAULT_READ_TIMEOUT
    stream = request.stream()
    while True:
        try:
            with anyio.fail_after(timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            logger.info("%s %s: the upload stalled for %g s", request.method, request.url.path,
                        timeout)  # fmt: skip
            raise ApiError(
                408, f"the upload stalled: nothing arrived for {timeout:g} s", headers=CLOSE
            ) from None
        yield chunk


async def _drain(
    request: Request, stream: AsyncIterator[bytes], declared: int | None, received: int, limit: int
) -> bool:
    """Read and drop the rest of a refused body, up to twice ``limit`` in all, so that a client
    that sends it all before reading the answer (Python's urllib) gets the 413, not a reset.
    A client that waits for "100 Continue" is answered at once: it sends nothing more.

    Returns:
        Whether the body was read to its end; if not, the connection is closed after the 413.
    """
    if request.headers.get("expect", "").lower() == "100-continue":
        return True
    if declared is not None and declared > 2 * limit:
        return False  # Not worth the bandwidth: the answer goes out now.
    async for chunk in stream:
        received += len(chunk)
        if received > 2 * limit:
            return False
    return True


def _too_large(limit: int, declared: int | None) -> str:
    size = f"this upload declares {declared:,} bytes" if declared is not None else "received more"
    return f"upload too large: the limit is {limit:,} bytes (--max-upload-mb); {size}"


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body, parsed in memory.

    Raises:
        ApiError: 400 when the Content-Type has no boundary or the body is malformed.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed multipart request: Content-Type has no boundary")
    parts: list[Part] = []
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
        filename = params.get(b"filename")
        parts.append(
            Part(
                name=params.get(b"name", b"").decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                data=b"".join(current["data"]),
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
        # The parser's words (a byte index, a character code) help no one reading the page.
        logger.info("malformed multipart request: %s", error)
        raise ApiError(
            400,
            "malformed multipart request: the body does not follow the multipart/form-data format",
            hint=MULTIPART_HINT,
        ) from None
    if not finished:
        raise ApiError(
            400,
            "malformed multipart request: it ends before its closing boundary",
            hint=MULTIPART_HINT,
        )
    return parts


def has_body(request: Request) -> bool:
    """Whether the request declares a body (a non-zero Content-Length, or chunks)."""
    declared = request.headers.get("content-length")
    if declared is None:
        return "transfer-encoding" in request.headers
    return declared.strip() != "0"


def is_raw_image(kind: str) -> bool:
    """A media type whose body is read as an image: Pillow tells the format from the bytes, so
    nonstandard names (image/jpg, image/x-png, image/x-ms-bmp) and octet-stream are fine."""
    return kind.startswith("image/") or kind == "application/octet-stream"


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case; "" when it has none."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def unsupported(received: str, accepted: str) -> ApiError:
    return ApiError(
        415, f"unsupported content type {received or 'no Content-Type'!r}: send {accepted}"
    )


async def read_upload(request: Request, limit: int) -> Upload:
    """The one image of a /api/predict request: a multipart field 'file' or a raw body.

    Raises:
        ApiError: 400, 413 or 415 when the request holds no single, non-empty image upload.
    """
    kind = media_type(request)
    if kind == "multipart/form-data":
        body = await read_body(request, limit)
        files = [
            part
            for part in parse_multipart(body, request.headers["content-type"])
            if part.filename is not None or part.name == "file"
        ]
        if len(files) != 1:
            raise ApiError(
                400, f"expected one file in the multipart field 'file'; received {len(files)}"
            )
        upload = Upload(files[0].filename, files[0].data)
    elif is_raw_image(kind):
        upload = Upload(None, await read_body(request, limit))
    elif not has_body(request):
        raise ApiError(400, f"empty body: send {ACCEPTED}")
    else:
        raise unsupported(kind, ACCEPTED)
    if not upload.data:
        raise ApiError(400, "empty file: the upload holds 0 bytes")
    return upload


async def read_batch(request: Request, limit: int) -> list[Upload]:
    """The files of a /api/predict/batch request: multipart file fields, 1 to MAX_BATCH_FILES.

    Raises:
        ApiError: 400, 413 or 415 when the request is not such a multipart body.
    """
    kind = media_type(request)
    accepted = "multipart/form-data with the images in the field 'files'"
    if kind != "multipart/form-data":
        if not has_body(request):
            raise ApiError(400, f"empty body: send {accepted}")
        raise unsupported(kind, accepted)
    body = await read_body(request, limit)
    files = [
        Upload(part.filename, part.data)
        for part in parse_multipart(body, request.headers["content-type"])
        if part.filename is not None
    ]
    if not files:
        raise ApiError(400, "no files: send the images as multipart file fields named 'files'")
    if len(files) > MAX_BATCH_FILES:
        raise ApiError(
            400, f"too many files: at most {MAX_BATCH_FILES} per request; received {len(files)}"
        )
    return files


# --- The image in an upload ---------------------------------------------------------------------


def open_upload(data: bytes) -> Image.Image:
    """The upload's image header, parsed once: its format and size, checked; no pixels yet.

    Raises:
        ApiError: 422 when the data is not a supported image, is damaged, or is too large.
    """
    try:
        return images.open_image(data)
    except UnsupportedImage:  # Said in words; which formats Pillow was asked for is detail.
        raise ApiError(422, "this file is not a supported image", hint=SEND_AN_IMAGE) from None
    except ImageError as error:
        raise ApiError(422, str(error), hint=SEND_AN_IMAGE) from None


def predict_upload(
    image: Image.Image, filename: str | None, predictor: Predictor, min_confidence: float
) -> Prediction:
    """Decode, normalise and classify an image ``open_upload`` opened.

    Raises:
        ApiError: 422 when its pixels cannot be read.
    """
    prediction = _read(image, filename)
    if isinstance(prediction, FileError):
        raise ApiError(422, prediction.message, hint=SEND_AN_IMAGE)
    classify([prediction], predictor, min_confidence)
    return prediction


def read_number_upload(
    image: Image.Image,
    filename: str | None,
    predictor: Predictor,
    min_confidence: float,
    expect_digits: int | None,
) -> NumberReading:
    """Decode an image ``open_upload`` opened and read the number in it.

    Raises:
        ApiError: 422 when its pixels cannot be read.
    """
    try:
        return read_number(
            image, predictor, expect_digits, min_confidence=min_confidence, file=filename
        )
    except ImageError as error:
        raise ApiError(422, str(error), hint=SEND_AN_IMAGE) from None
    except Exception:  # noqa: BLE001 - an unexpected decoder or reader failure: the input's.
        logger.exception("image processing failed")
        raise ApiError(422, "the image could not be processed", hint=SEND_AN_IMAGE) from None


def predict_batch(
    uploads: list[Upload], predictor: Predictor, min_confidence: float
) -> list[Prediction | FileError]:
    """Read every upload, classify the readable ones in one model call; answer in order."""
    read = [
        _read(upload.data, upload.filename)
        if upload.data
        else FileError(upload.filename, "empty file (0 bytes)")
        for upload in uploads
    ]
    classify([item for item in read if isinstance(item, Prediction)], predictor, min_confidence)
    return read


def _read(source: bytes | Image.Image, filename: str | None) -> Prediction | FileError:
    """``read_digit``, where a crash on odd input is the input's fault: a FileError."""
    try:
        return read_digit(source, filename)
    except Exception:  # noqa: BLE001 - an unexpected decoder or normaliser failure.
        logger.exception("image processing failed")  # The log has the details, the client not.
        return FileError(filename, "the image could not be processed")

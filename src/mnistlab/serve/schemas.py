"""What the API answers, for the OpenAPI page at /docs: response models, the error tables of
each route, the request bodies it reads, and ``ApiError``, the one way a route says no."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Raw bodies the API documents; it reads any image/* type, as Pillow tells the format from
# the bytes.
IMAGE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/bmp",
    "image/tiff",
    "image/webp",
    "image/gif",
    "application/octet-stream",
)
ACCEPTED = (
    "a multipart/form-data upload (field 'file') or the image as a raw body (Content-Type"
    " image/png, image/jpeg or any image/* type, or application/octet-stream)"
)
SEND_AN_IMAGE = "send a PNG, JPEG, BMP, TIFF, WebP or GIF image"


class ApiError(Exception):
    """A request the API refuses: answered with ``status`` and ``{"error": ...}``.

    Args:
        status: the HTTP status, always a 4xx.
        message: one line, what was wrong.
        hint: what is accepted instead, appended to the message when given.
        headers: extra response headers, e.g. Connection: close.
    """

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint
        self.headers = headers

    def to_dict(self) -> dict[str, str]:
        return {"error": f"{self.message}; {self.hint}" if self.hint else self.message}


class ErrorResponse(BaseModel):
    error: str = Field(description="One line: what was wrong and what is accepted.")


class PredictionResponse(BaseModel):
    """One image's answer: the fields of `mnistlab predict --json`, plus the preview."""

    file: str | None = Field(description="The upload's file name; null for a raw body.")
    label: int | None = Field(
        None, description="The digit read (the best guess), 0-9; null only when rejected."
    )
    confidence: float | None = Field(
        None, description="Probability of the most likely digit; null when no digit was found."
    )
    probabilities: list[float] = Field(
        [], description="Ten probabilities, for digits 0-9; empty when no digit was found."
    )
    uncertain: bool = Field(
        False, description="True when the confidence is below min_confidence: a best guess."
    )
    rejected: str | None = Field(
        None,
        description="Why the image holds no digit (no digit-like ink, or not a digit); null"
        " otherwise.",
    )
    not_digit: float | None = Field(
        None,
        description="Probability that the image holds no single digit; null for a model"
        " without that head.",
    )
    preview_png_base64: str | None = Field(
        None, description="The 28x28 image the model saw, as a base64 PNG; null when it saw none."
    )


class BatchEntry(PredictionResponse):
    error: str | None = Field(
        None, description="Set, alone with `file`, when this file is not a readable image."
    )


class BatchResponse(BaseModel):
    results: list[BatchEntry] = Field(description="One entry per file, in the order sent.")


class DigitResponse(BaseModel):
    label: int = Field(description="The digit read, 0-9.")
    confidence: float = Field(description="Probability of that digit.")
    uncertain: bool = Field(description="True when the model is not sure of this digit.")
    box: list[int] = Field(
        description="Where the digit is: [x, y, width, height] in the image's own pixels."
    )
    preview_png_base64: str | None = Field(
        None, description="The 28x28 image the model saw for this digit, as a base64 PNG."
    )


class NumberResponse(BaseModel):
    """One number's answer: the fields of `mnistlab read --json`, each digit with its preview."""

    file: str | None = Field(None, description="The upload's file name; null for a raw body.")
    text: str | None = Field(
        None, description="The number read, digits only, left to right; null when rejected."
    )
    confidence: float | None = Field(
        None,
        description="The product of the digits' confidences and the reader's confidence in"
        " how many digits there are; null when rejected.",
    )
    uncertain: bool = Field(
        False,
        description="The number may be misread: its confidence is below the server's"
        " --min-confidence, or a digit's is. The best reading is given all the same.",
    )
    digits: list[DigitResponse] = Field(
        [], description="Each digit, left to right (also when rejected, if any were read)."
    )
    rejected: str | None = Field(
        None,
        description="Why no number is reported (no ink, specks, a line, marks that are not"
        " digits, or not as many digits as `expect_digits`); null otherwise.",
    )


class ModelInfo(BaseModel):
    name: str = Field(description="The model's name, e.g. `cnn-best`.")
    run: str = Field(description="The run directory it was loaded from.")
    dataset: str | None = Field(description="The dataset it was trained on.")
    test_accuracy: float | None = Field(description="Its accuracy on that dataset's test set.")
    parameters: int | None = Field(description="Its number of trainable parameters.")
    engine: str = Field(description="What runs it: `onnxruntime` or `keras`.")
    min_confidence: float = Field(description="Below this confidence an answer is `uncertain`.")
    max_upload_mb: float = Field(description="The largest upload accepted, in megabytes.")
    mnistlab_version: str = Field(description="The server's mnistlab version.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` table of a route that may refuse with these statuses."""
    descriptions = {
        400: "Malformed request: empty body, broken multipart, or no/too many files.",
        408: "The upload stalled: nothing arrived for the server's --read-timeout seconds.",
        413: "The body is larger than the server's --max-upload-mb.",
        415: "Neither a multipart/form-data upload nor a raw body of an image type or"
        " application/octet-stream (the bytes decide the format).",
        422: "Not a readable image: not an image, truncated, or too many pixels.",
        503: "Busy: the server already has as many requests in flight as it takes now"
        " (its --max-in-flight, fewer while it is turning clients away); retry after"
        " `Retry-After` seconds.",
    }
    return {
        status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses
    }


def upload_body(batch: bool) -> dict[str, Any]:
    """The ``openapi_extra`` request body of a route that reads uploads itself."""
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

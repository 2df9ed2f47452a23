"""Tests for mnistlab.images: people's images of digits -> MNIST-style 28x28 uint8 arrays.

Every variant of the same hand-drawn digit (inverted, shifted, scaled, noisy, transparent,
16-bit, rotated by EXIF, animated) must come out looking like the clean version, and every
bad input must raise ImageError, never a raw Pillow or numpy exception.
"""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zlib

import numpy as np
from scipy import ndimage
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from mnistlab import images
from mnistlab.data import to_model_input
from mnistlab.errors import ImageError
from mnistlab.images import (
    MAX_PIXELS,
    ink_fraction,
    load_image,
    normalize_digit,
    to_mnist_batch,
)
from tests.helpers import correlation, stroke_width

# Strokes of a seven and a one in unit coordinates (x, y), drawn as polylines.
SEVEN = [[(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)], [(0.3, 0.55), (0.75, 0.55)]]
ONE = [[(0.3, 0.3), (0.55, 0.05), (0.55, 0.95)]]


def draw_digit(
    strokes=SEVEN,
    size: int = 200,
    width: int = 16,
    canvas: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
    ink: int = 0,
    paper: int = 255,
) -> Image.Image:
    """A digit ``size`` px tall drawn with round-capped lines on a grayscale canvas."""
    canvas = canvas or (size + 40, size + 40)
    image = Image.new("L", canvas, paper)
    draw = ImageDraw.Draw(image)
    left, top = (canvas[0] - size) // 2 + offset[0], (canvas[1] - size) // 2 + offset[1]
    for stroke in strokes:
        points = [(left + x * size, top + y * size) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            radius = width / 2
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    return image


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def check_mnist_like(digit: np.ndarray) -> None:
    """The properties every MNIST digit has."""
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() >= 250, "the strongest ink is white"
    assert np.median(digit) == 0 and digit[0].max() == 0 == digit[-1].max(), "paper is black"
    rows, columns = np.nonzero(digit)
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert max(height, width) in (19, 20, 21) and min(height, width) <= 20
    mass = digit.astype(float) / digit.sum()
    row_grid, column_grid = np.mgrid[0:28, 0:28]
    centre = ((mass * row_grid).sum(), (mass * column_grid).sum())
    assert abs(centre[0] - 14) <= 1 and abs(centre[1] - 14) <= 1, centre


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The clean seven: dark ink on white paper, centred, 200 px tall."""
    digit = normalize_digit(draw_digit())
    check_mnist_like(digit)
    return digit


def assert_same_digit(digit: np.ndarray, reference: np.ndarray, minimum: float = 0.85) -> None:
    check_mnist_like(digit)
    assert correlation(digit, reference) > minimum
    assert correlation(digit, reference) > correlation(digit, normalize_digit(draw_digit(ONE)))


# --- Variants of one digit agree ---------------------------------------------------------------


def test_reference_has_mnist_statistics(reference):
    assert 0.05 <= ink_fraction(reference) <= 0.35
    assert ink_fraction(reference) == np.mean(reference >= 128)


def test_light_ink_on_dark_canvas(reference):
    drawing = draw_digit(ink=255, paper=0)  # A white-on-black canvas drawing.
    assert_same_digit(normalize_digit(drawing), reference, 0.97)


def test_grey_ink_on_grey_paper(reference):
    assert_same_digit(normalize_digit(draw_digit(ink=90, paper=170)), reference, 0.97)


def test_off_centre_in_large_canvas(reference):
    photo = draw_digit(size=120, width=10, canvas=(900, 600), offset=(-280, 180))
    assert_same_digit(normalize_digit(photo), reference, 0.9)


def test_scaled_up_tenfold(reference):
    small = normalize_digit(draw_digit(size=28, width=3, canvas=(36, 36)))
    large = normalize_digit(draw_digit(size=280, width=30, canvas=(360, 360)))
    assert_same_digit(small, reference, 0.8)
    assert_same_digit(large, reference, 0.9)
    assert correlation(small, large) > 0.8


@pytest.mark.parametrize("width", [6, 28])
def test_thin_and_thick_strokes(reference, width):
    assert_same_digit(normalize_digit(draw_digit(width=width)), reference, 0.8)


def test_tall_narrow_digit_keeps_its_aspect_ratio():
    digit = normalize_digit(draw_digit(ONE, size=300, width=20))
    check_mnist_like(digit)
    rows, columns = np.nonzero(digit >= 64)
    assert np.ptp(rows) + 1 >= 19 and np.ptp(columns) + 1 <= 12


def noisy_photo(seed: int = 0) -> Image.Image:
    """The seven on textured, unevenly lit paper with Gaussian and salt-and-pepper noise."""
    rng = np.random.default_rng(seed)
    ink = 1 - np.asarray(draw_digit(size=160, width=14, canvas=(400, 300)), float) / 255
    rows, columns = np.mgrid[0:300, 0:400]
    lighting = 0.75 + 0.2 * columns / 400 + 0.05 * rows / 300  # Brighter towards one corner.
    texture = np.asarray(
        Image.fromarray(rng.normal(0, 1, (30, 40)).astype(np.float32)).resize((400, 300)),
        float,
    )
    paper = lighting * (1 + 0.04 * texture)
    pixels = 255 * paper * (1 - 0.75 * ink) + rng.normal(0, 12, paper.shape)
    salt = rng.random(paper.shape)
    pixels[salt < 0.01] = 0
    pixels[salt > 0.99] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_noise_and_textured_paper(reference):
    assert_same_digit(normalize_digit(noisy_photo()), reference, 0.85)


def test_far_speck_is_ignored_but_a_separate_stroke_is_kept(reference):
    image = draw_digit(canvas=(500, 400))
    ImageDraw.Draw(image).ellipse((440, 20, 452, 32), fill=0)  # Dirt in a corner.
    assert_same_digit(normalize_digit(image), reference, 0.97)
    # The crossbar of the seven is its own blob; dropping it would change the digit.
    crossbar_only = normalize_digit(draw_digit([SEVEN[0]]))
    assert correlation(normalize_digit(image), crossbar_only) < 0.97


@pytest.mark.parametrize(
    ("sheet", "position"),
    [((420, 330), (90, 60)), ((600, 300), (0, 150)), ((480, 330), (120, 120))],
    ids=["sheet-inside-photo", "table-above", "table-on-two-sides"],
)
def test_sheet_of_paper_on_a_dark_table(reference, sheet, position):
    # The table is darker than the paper and touches the image edge; it is not ink.
    photo = Image.new("L", (600, 450), 40)
    photo.paste(draw_digit(canvas=sheet), position)
    assert_same_digit(normalize_digit(photo), reference, 0.95)


def test_rgb_coloured_ink(reference):
    channels = [draw_digit(ink=30, paper=250), draw_digit(ink=60), draw_digit(ink=160)]
    blue_pen = Image.merge("RGB", channels)
    assert_same_digit(normalize_digit(load_image(encode(blue_pen))), reference, 0.97)


@pytest.mark.parametrize("stroke", [(0, 0, 0), (255, 255, 255)])
def test_rgba_strokes_on_transparent_canvas(reference, stroke):
    alpha = 255 - np.asarray(draw_digit())  # Opaque strokes; transparent pixels are (0, 0, 0, 0).
    pixels = np.zeros((*alpha.shape, 4), np.uint8)
    pixels[..., :3] = stroke
    pixels[..., 3] = alpha
    pixels[alpha == 0, :3] = 0
    image = load_image(encode(Image.fromarray(pixels)))
    assert image.mode == "RGBA"
    assert_same_digit(normalize_digit(image), reference, 0.97)


def test_sixteen_bit_grayscale(reference):
    pixels = np.asarray(draw_digit(), np.uint16) * 257
    image = load_image(encode(Image.fromarray(pixels)))
    assert image.mode.startswith("I")
    assert_same_digit(normalize_digit(image), reference, 0.97)
    twelve_bit = (pixels >> 4).astype(np.uint16)  # Values 0..4095 only.
    assert_same_digit(normalize_digit(twelve_bit), reference, 0.97)


def test_jpeg_exif_orientation_is_applied(reference):
    upright = draw_digit(canvas=(300, 240)).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # As the camera sensor saw it.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    image = load_image(encode(stored, "JPEG", quality=85, exif=exif.tobytes()))
    assert image.size == upright.size
    assert_same_digit(normalize_digit(image), reference, 0.95)


def test_first_frame_of_animated_gif_and_multipage_tiff(reference):
    seven, one = draw_digit(), draw_digit(ONE)
    for format in ("GIF", "TIFF"):
        data = encode(seven, format, save_all=True, append_images=[one])
        assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
        assert_same_digit(normalize_digit(load_image(data)), reference, 0.97)


@pytest.mark.parametrize("format", ["BMP", "WEBP", "TIFF"])
def test_other_formats(reference, format):
    assert_same_digit(normalize_digit(load_image(encode(draw_digit(), format))), reference, 0.95)


def test_paths_and_batches(tmp_path, reference):
    path = tmp_path / "seven.png"
    path.write_bytes(encode(draw_digit()))
    sources = [path, str(path), path.read_bytes(), draw_digit(), np.asarray(draw_digit())]
    batch = to_mnist_batch(sources)
    assert batch.shape == (5, 28, 28) and batch.dtype == np.uint8
    assert (batch == reference).all()
    model_input = to_model_input(batch)  # The one scaling step every model sees.
    assert model_input.shape == (5, 784) and 0 <= model_input.min() and model_input.max() <= 1
    assert to_mnist_batch([]).shape == (0, 28, 28)


def test_mnist_digit_is_nearly_unchanged():
    # An MNIST-style digit already satisfies every rule, so it should come back as it went in.
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # A one: 20 tall, centre of mass at (13.5, 14).
    digit[4:24, 12] = digit[4:24, 16] = 100
    out = normalize_digit(digit)
    check_mnist_like(out)
    assert correlation(out, digit) > 0.9


@pytest.mark.mnist
def test_real_mnist_digits_round_trip():
    data_dir = os.environ.get("MNISTLAB_DATA_DIR")
    if not data_dir:
        pytest.skip("set MNISTLAB_DATA_DIR to the folder holding mnist/")
    from mnistlab.data import load_dataset

    images = load_dataset("mnist", data_dir).test_images[:300]
    correlations = [correlation(normalize_digit(image), image) for image in images]
    assert np.median(correlations) > 0.97 and np.quantile(correlations, 0.1) > 0.8


# --- Bad input ---------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming the given size whose pixel data is a few compressed zero bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + checksum

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes(1000))
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not an image", "not a supported image"),
        (b"%PDF-1.4\n" + b"0" * 100, "not a supported image"),
        (encode(draw_digit())[:400], "truncated"),
        (encode(draw_digit().convert("RGB"), "JPEG")[:300], "truncated"),
        (png_header(100_000, 100_000), "pixels"),
        (png_header(9_000, 9_000), "pixels"),  # Under Pillow's own limit, over ours.
    ],
    ids=["empty", "text", "pdf", "truncated-png", "truncated-jpeg", "bomb", "too-large"],
)
def test_bad_bytes_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message) as caught:
        load_image(data)
    assert "\n" not in str(caught.value)


def test_too_large_limit_is_sane():
    assert 12_000_000 <= MAX_PIXELS <= 100_000_000  # Phone photos pass; bombs do not.


def test_bad_paths_raise_image_error(tmp_path):
    with pytest.raises(ImageError, match="missing.png: cannot be read"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="cannot be read"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="expected image bytes or a file path"):
        load_image(42)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (100, 100), 255),
        Image.new("RGB", (640, 480), (20, 20, 20)),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
        Image.new("L", (1, 1), 0),
        Image.new("RGBA", (280, 280), (0, 0, 0, 255)),
    ],
    ids=["white", "black-rgb", "transparent", "one-pixel", "cleared-canvas"],
)
def test_blank_images_have_no_ink(image):
    with pytest.raises(ImageError, match="no digit-like ink found: the image is uniform"):
        normalize_digit(load_image(encode(image)))


def test_a_tap_is_named_as_specks_not_as_faint_ink():
    # Black, so not faint, but far under 0.1% of the image: the contrast percentile misses it.
    image = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(image).ellipse((290, 90, 296, 96), fill=0)
    with pytest.raises(ImageError, match="only marks are specks"):
        normalize_digit(load_image(encode(image)))


def test_faint_smudge_and_pure_noise_have_no_ink():
    faint = draw_digit(ink=240, paper=250)  # Four percent contrast.
    with pytest.raises(ImageError, match="no digit-like ink found.*4%"):
        normalize_digit(faint)
    rng = np.random.default_rng(0)
    grain = np.clip(rng.normal(128, 6, (300, 300)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="no digit-like ink found"):
        normalize_digit(grain)


def test_bad_arrays_raise_image_error():
    for array, message in [
        (np.zeros((0, 5)), "no pixels"),
        (np.zeros((4, 4, 5)), "shape"),
        (np.zeros((2, 2, 2, 2)), "shape"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([["a", "b"]]), "numeric"),
        ("not an image", "expected a PIL image"),
    ]:
        with pytest.raises(ImageError, match=message):
            normalize_digit(array)


# --- Fuzzing: a result or ImageError, nothing else ---------------------------------------------


def mnist_or_image_error(load) -> None:
    try:
        digit = normalize_digit(load())
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert digit.shape == (28, 28) and digit.dtype == np.uint8


ARRAYS = st.one_of(
    *[
        hnp.arrays(
            dtype,
            st.tuples(st.integers(1, 64), st.integers(1, 64)).flatmap(
                lambda shape: st.sampled_from([shape, *[(*shape, c) for c in (1, 2, 3, 4)]])
            ),
            elements=elements,
        )
        for dtype, elements in [
            (np.uint8, None),
            (np.uint16, None),
            (np.int32, None),
            (np.bool_, None),
            (np.float32, st.floats(width=32, allow_nan=True, allow_infinity=True)),
            (np.float64, st.floats(-1e308, 1e308)),
            (np.float64, st.floats(0, 1)),
        ]
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARRAYS)
def test_fuzz_arrays(array):
    mnist_or_image_error(lambda: array)


PIL_MODES = {
    np.uint8: ["L", "RGB", "RGBA", "LA", "P", "1", "CMYK"],
    np.uint16: ["I;16"],
    np.int32: ["I"],
    np.float32: ["F"],
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(PIL_MODES, key=str)).flatmap(
        lambda dtype: st.tuples(
            hnp.arrays(dtype, st.tuples(st.integers(1, 64), st.integers(1, 64))),
            st.sampled_from(PIL_MODES[dtype]),
            st.sampled_from(["PNG", "TIFF", "GIF", "BMP", "WEBP", "JPEG"]),
        )
    )
)
def test_fuzz_encoded_images(case):
    array, mode, format = case
    image = Image.fromarray(array)
    if image.mode != mode:
        image = image.convert(mode)
    try:
        data = encode(image, format)
    except (OSError, ValueError, KeyError):
        return  # This format cannot store this mode; nothing to decode.
    mnist_or_image_error(lambda: load_image(data))


def _mutate(data: bytearray, edits: list[tuple[int, int]]) -> bytearray:
    """Overwrite bytes of a valid image, as a damaged download or disk would."""
    for position, value in edits:
        data[position % len(data)] = value
    return data


SAMPLES = [
    encode(draw_digit(size=40, width=5, canvas=(48, 48)), format, **options)
    for format, options in [
        ("PNG", {}),
        ("JPEG", {"quality": 80}),
        ("GIF", {}),
        ("TIFF", {}),
        ("BMP", {}),
        ("WEBP", {}),
    ]
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(
            st.sampled_from(SAMPLES),
            st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
            st.integers(1, 10_000),
        ).map(lambda case: bytes(_mutate(bytearray(case[0]), case[1])[: case[2]])),
    )
)
def test_fuzz_bytes(data):
    mnist_or_image_error(lambda: load_image(data))


# --- Canvas drawings and the fast path ---------------------------------------------------------


def canvas_drawing(
    strokes=SEVEN, width: float = 20, size: int = 200, offset=(0, 0), style: str = "white-on-black"
) -> Image.Image:
    """A drawing as a browser canvas exports it: 280x280 RGBA, round-capped anti-aliased lines.

    Drawn at 4x and box-shrunk, which is how the anti-aliased rim of a canvas stroke looks.
    """
    scale = 4
    coverage = draw_digit(
        strokes,
        size=size * scale,
        width=round(width * scale),
        canvas=(280 * scale,) * 2,
        offset=(offset[0] * scale, offset[1] * scale),
        ink=255,
        paper=0,
    ).reduce(scale)
    level = np.asarray(coverage)
    pixels = np.zeros((280, 280, 4), np.uint8)
    if style == "white-on-black":
        pixels[..., :3], pixels[..., 3] = level[..., None], 255
    elif style == "black-on-white":
        pixels[..., :3], pixels[..., 3] = 255 - level[..., None], 255
    else:  # Black strokes on a transparent canvas.
        pixels[..., 3] = level
    return Image.fromarray(pixels)


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    mass = digit.astype(float) / digit.sum()
    rows, columns = np.mgrid[0:28, 0:28]
    return float((mass * rows).sum()), float((mass * columns).sum())


@pytest.mark.parametrize("style", ["white-on-black", "black-on-white", "black-on-transparent"])
@pytest.mark.parametrize("offset", [(0, 0), (-60, 50)], ids=["centred", "in-a-corner"])
def test_canvas_drawing_looks_like_mnist(style, offset):
    data = encode(canvas_drawing(size=150, offset=offset, style=style))
    digit = normalize_digit(load_image(data))
    check_mnist_like(digit)
    row, column = centre_of_mass(digit)
    assert abs(row - 14) <= 0.5 and abs(column - 14) <= 0.5, (row, column)
    rows, columns = np.nonzero(digit)
    assert max(np.ptp(rows), np.ptp(columns)) + 1 in (20, 21)
    assert 2.0 <= stroke_width(digit) <= 4.5, stroke_width(digit)
    assert 0.05 <= ink_fraction(digit) <= 0.3


def test_thin_and_thick_brushes_give_similar_digits():
    digits = [normalize_digit(canvas_drawing(width=width)) for width in (10, 20, 30)]
    widths = [stroke_width(digit) for digit in digits]
    assert widths == sorted(widths), "a wider brush still draws a wider stroke"
    assert 1.5 <= widths[0] and widths[-1] <= 5.0, widths
    for digit in digits:
        assert correlation(digit, digits[1]) > 0.8
        assert correlation(digit, digits[1]) > correlation(
            digit, normalize_digit(canvas_drawing(ONE))
        )


def test_broad_brush_is_thinned_to_mnist_pen_width(monkeypatch):
    broad, normal = canvas_drawing(width=32, size=140), canvas_drawing(width=12, size=200)
    thinned, kept = normalize_digit(broad), normalize_digit(normal)
    monkeypatch.setattr(images, "_match_pen_width", lambda crop: crop)
    as_drawn = normalize_digit(broad)
    assert stroke_width(as_drawn) > 4.0, "the brush is broader than most MNIST pens"
    assert abs(stroke_width(thinned) - 2.7) < abs(stroke_width(as_drawn) - 2.7) - 0.5
    check_mnist_like(thinned)
    assert (kept == normalize_digit(normal)).all(), "a brush narrower than MNIST's is kept"


def loop(centre_x: float, centre_y: float, radius_x: float, radius_y: float) -> list:
    angles = np.linspace(0, 2 * np.pi, 33)
    return [(centre_x + radius_x * np.sin(a), centre_y - radius_y * np.cos(a)) for a in angles]


EIGHT = [loop(0.5, 0.27, 0.2, 0.22), loop(0.5, 0.72, 0.25, 0.23)]


def test_small_digit_drawn_with_a_broad_brush_stays_one_digit():
    # A small 8 drawn with a broad brush fills most of its box, as a sheet of paper would,
    # but its loops are still open: it must be read as a digit, not searched for one.
    bold = canvas_drawing(EIGHT, width=32, size=90)
    assert images._solid_box(images._grayscale(bold) >= 0.5) is not None, "looks like a sheet"
    digit = normalize_digit(load_image(encode(bold)))
    check_mnist_like(digit)
    _, pieces = ndimage.label(digit >= 128, np.ones((3, 3)))
    assert pieces == 1
    rows, _ = np.nonzero(digit)
    assert np.ptp(rows) + 1 in (20, 21)
    drawn_finely = normalize_digit(canvas_drawing(EIGHT, width=12, size=200))
    assert correlation(digit, drawn_finely) > 0.6
    assert correlation(digit, drawn_finely) > correlation(
        digit, normalize_digit(canvas_drawing(ONE))
    )


def general_path(image) -> np.ndarray:
    """normalize_digit with the flat-background fast path switched off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "_clean_paper", lambda gray: None)
        return normalize_digit(image)


@pytest.mark.parametrize("style", ["white-on-black", "black-on-white", "black-on-transparent"])
@pytest.mark.parametrize("width", [8, 20, 30])
def test_fast_path_agrees_with_the_general_path(style, width, monkeypatch):
    drawing = load_image(encode(canvas_drawing(width=width, offset=(30, -20), style=style)))
    assert images._clean_paper(images._grayscale(drawing)) is not None, "takes the fast path"
    # Both paths find the same strokes; only drawings have their pen width matched.
    monkeypatch.setattr(images, "_match_pen_width", lambda crop: crop)
    fast, general = normalize_digit(drawing), general_path(drawing)
    assert np.abs(fast.astype(int) - general).max() <= 3
    assert correlation(fast, general) > 0.999


def test_noisy_and_over_exposed_photos_take_the_general_path():
    assert images._clean_paper(images._grayscale(noisy_photo())) is None
    # Flat white over half the image (clipped highlights), a lighting gradient elsewhere.
    photo = np.asarray(noisy_photo(), float)
    photo[:, :200] = 255
    photo[:, 200:] = np.minimum(255, photo[:, 200:] + np.linspace(120, 0, 200))
    assert images._clean_paper(images._grayscale(photo.astype(np.uint8))) is None


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-1, 1, width=32)),
    st.integers(0, 2000),
    st.sampled_from([0.999, 0.99, 0.9, 0.5]),
)
def test_top_quantile_equals_numpy_on_the_padded_array(values, padding, quantile):
    total = values.size + padding
    padded = np.concatenate([values, np.zeros(padding, np.float32)])
    expected = float(np.quantile(padded, quantile))
    assert images._top_quantile(values, total, quantile) == pytest.approx(expected, abs=1e-6)


def test_twelve_megapixel_photo_is_decoded_small_and_normalised():
    photo = draw_digit(size=1800, width=140, canvas=(4000, 3000), offset=(700, -300))
    data = encode(photo.convert("RGB"), "JPEG", quality=85)
    image = load_image(data)
    assert max(image.size) < 4000 / 2, "the JPEG is decoded at a reduced scale"
    assert max(image.size) >= images.WORKING_SIDE
    tracemalloc.start()
    try:
        digit = normalize_digit(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_mnist_like(digit)
    assert peak < 40_000_000, f"{peak:,} bytes of arrays for one photo"
    assert correlation(digit, normalize_digit(draw_digit())) > 0.85


def test_pixel_count_reads_only_the_header():
    header_only = encode(draw_digit(canvas=(300, 200)))[:100]  # Cut before the pixel data.
    assert images.pixel_count(header_only) == 300 * 200
    assert images.pixel_count(b"not an image") is None
    assert images.pixel_count(b"") is None

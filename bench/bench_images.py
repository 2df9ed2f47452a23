"""How fast and how well images.py turns people's images into MNIST digits, against a baseline.

The baseline is images.py as it was at ``--baseline`` (a git revision, default the last one
before the drawing fast path), imported from git into a temporary module and measured in the
same run. Run it before a change to images.py lands: the change must not lose accuracy on any
kind (``tests/test_image_outputs.py`` shows *that* the outputs changed; this shows what it cost).

1. Speed, per stage, median ms over interleaved repeats: decode (``load_image``), normalise
   (``normalize_digit``), classify (the shipped model on ONNX Runtime) and the sum, for a
   280x280 canvas PNG (a drawing, as the page sends it) and a 12-megapixel phone photo (JPEG).
2. Accuracy of the shipped model on MNIST test digits rendered as canvas drawings (white on
   black, black on white, black on transparent; see make_user_digits.render_drawing), phone
   photos, scans, mouse drawings, low-resolution scans and typed fonts, with the new and the
   baseline normalisation: each accuracy with its 95% (Wilson) interval, and the paired
   difference new minus baseline with its 95% interval. ``--split tune`` uses test digits 0-4999 (to choose settings on), ``report``
   (default) digits 5000-9999 (to report on).

    .venv/bin/python bench/bench_images.py --data-dir /work/shared/data [--count 2000] [--split report]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab import images
from mnistlab.data import load_dataset
from mnistlab.errors import ImageError
from mnistlab.predict import Predictor

HERE = Path(__file__).resolve().parent
BASELINE = "0279082"  # images.py before the drawing fast path and JPEG draft decoding.
SPLITS = {"tune": (0, 5000), "report": (5000, 10000)}
PHOTO_12MP = (4000, 3000)


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_baseline(revision: str, folder: Path):
    """images.py at ``revision`` as a module of its own (it imports mnistlab's other modules)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/mnistlab/images.py"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = folder / "images_baseline.py"
    path.write_text(source)
    return load_module("images_baseline", path)


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def sample_inputs(generator, digits: np.ndarray) -> dict[str, bytes]:
    """A canvas PNG and a 12-megapixel phone photo, as bytes a server would receive."""
    rng = np.random.default_rng(0)
    canvas = generator.render_drawing(digits[0], "white-on-black", rng)
    photo, _ = generator.render_photo(digits[1], rng)
    # Upscaled with fresh sensor noise, so the JPEG has the detail (and size) of a real one.
    big = np.asarray(photo.resize(PHOTO_12MP, Image.Resampling.BICUBIC), np.float32)
    big = big + rng.normal(0, 3, big.shape).astype(np.float32)
    big = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    return {
        "canvas PNG 280x280": encode(canvas, "PNG"),
        "photo JPEG 4000x3000": encode(big, "JPEG", quality=90),
    }


def time_stages(module, data: bytes, predictor: Predictor) -> dict[str, float]:
    """Seconds for each stage of one image."""
    started = time.perf_counter()
    image = module.load_image(data)
    decoded = time.perf_counter()
    cpu_started = time.thread_time()
    digit = module.normalize_digit(image)
    cpu_normalised = time.thread_time()
    normalised = time.perf_counter()
    predictor.probabilities(digit[None])
    classified = time.perf_counter()
    return {
        "decode": decoded - started,
        "normalise": normalised - decoded,
        # CPU time of this thread: what the stage costs without other jobs on the cores.
        "normalise (cpu)": cpu_normalised - cpu_started,
        "classify": classified - normalised,
        "total": classified - started,
    }


def speed(modules: dict, inputs: dict[str, bytes], predictor: Predictor, repeats: int) -> None:
    print("\nspeed, median ms per image (versions interleaved, same process)")
    print(
        f"  {'input':22} {'stage':15} "
        + " ".join(f"{name:>9}" for name in modules)
        + f" {'ratio':>7}"
    )
    for label, data in inputs.items():
        count = repeats if len(data) < 1_000_000 else max(5, repeats // 20)
        samples = {name: [] for name in modules}
        for name, module in modules.items():  # Warm-up.
            time_stages(module, data, predictor)
        for _ in range(count):
            for name, module in modules.items():
                samples[name].append(time_stages(module, data, predictor))
        for stage in samples["new"][0]:
            medians = {
                name: 1000 * statistics.median(sample[stage] for sample in runs)
                for name, runs in samples.items()
            }
            base, new = medians["baseline"], medians["new"]
            print(
                f"  {label:22} {stage:15} "
                + " ".join(f"{value:9.2f}" for value in medians.values())
                + f" {base / new:6.1f}x"
            )
        print(f"  ({count} repeats, {len(data):,} bytes)")


def picked_digits(split: str, count: int) -> np.ndarray:
    """The test-digit indices of ``split`` that accuracy is measured on, sorted."""
    start, stop = SPLITS[split]
    return np.sort(np.random.default_rng(1).choice(np.arange(start, stop), count, replace=False))


def drawing_ink(generator, digit: np.ndarray, index: int) -> np.ndarray:
    """Test digit ``index``'s pen path and brush: one per digit, whatever the style."""
    return generator.drawing_coverage(digit, np.random.default_rng([0, index]))


KINDS = ("drawing", "photo", "scan", "mouse", "lowres", "font")


def render(
    generator, digit: np.ndarray, kind: str, index: int, label: int = 0
) -> list[tuple[str, bytes]]:
    """The encoded images of one MNIST digit for ``kind``; drawings come in every style, and a
    font kind types the digit's ``label``."""
    rng = np.random.default_rng([0, index])
    if kind == "drawing":
        # One pen path and brush per digit, drawn in each style: only the colours differ.
        ink = drawing_ink(generator, digit, index)
        return [
            (style, encode(generator.colour_drawing(ink, style), "PNG"))
            for style in generator.DRAWING_STYLES
        ]
    if kind == "photo":
        image, exif = generator.render_photo(digit, rng)
        return [("photo", encode(image, "JPEG", quality=80, exif=exif))]
    if kind == "mouse":
        return [("mouse", encode(generator.render_mouse(digit, rng), "PNG"))]
    if kind == "lowres":
        return [("lowres", encode(generator.render_lowres(digit, rng), "PNG"))]
    if kind == "font":
        fonts = _fonts(generator)
        font_file = fonts[int(rng.integers(len(fonts)))] if fonts else None
        return [("font", encode(generator.render_font(label, font_file, rng), "PNG"))]
    return [("scan", encode(generator.render_scan(digit, rng), "PNG"))]


def _fonts(generator, found: list[list[str]] = []) -> list[str]:  # noqa: B006 - a cache
    if not found:
        found.append(generator.find_fonts())
    return found[0]


def wilson(correct: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    z = 1.96
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def normalise_all(module, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Digits (N, 28, 28) and a mask of those that were not rejected."""
    digits = np.zeros((len(encoded), 28, 28), np.uint8)
    read = np.zeros(len(encoded), bool)
    for position, data in enumerate(encoded):
        try:
            digits[position] = module.normalize_digit(module.load_image(data))
            read[position] = True
        except ImageError:
            pass
    return digits, read


def gap_with_interval(reference: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Paired accuracy gap in points (MNIST minus rendered) and its 95% half-width."""
    difference = reference.astype(float) - correct.astype(float)
    half_width = 1.96 * difference.std(ddof=1) / np.sqrt(len(difference))
    return 100 * difference.mean(), 100 * half_width


def accuracy(
    modules: dict, generator, dataset, predictor, split: str, count: int, kinds: list[str]
) -> None:
    start, stop = SPLITS[split]
    picked = picked_digits(split, count)
    reference = predictor.probabilities(dataset.test_images[picked]).argmax(1)
    reference_correct = reference == dataset.test_labels[picked]
    print(
        f"\naccuracy, {count} MNIST test digits from {start}-{stop - 1} ({split} split);"
        f" MNIST itself: {reference_correct.mean():.4f}"
    )
    print(
        f"  {'kind':22} {'version':9} {'accuracy':>9} {'95% interval':>16} {'rejected':>9}"
        f" {'gap to MNIST (points, 95% CI)':>31}"
    )
    for kind in kinds:
        started = time.perf_counter()
        by_style: dict[str, list[bytes]] = {}
        for index in picked:
            label = int(dataset.test_labels[index])
            for style, data in render(
                generator, dataset.test_images[index], kind, int(index), label
            ):
                by_style.setdefault(style, []).append(data)
        rendered_seconds = time.perf_counter() - started
        for style, encoded in by_style.items():
            outcomes = {}
            for name, module in modules.items():
                digits, read = normalise_all(module, encoded)
                predicted = predictor.probabilities(digits).argmax(1)
                correct = (predicted == dataset.test_labels[picked]) & read
                outcomes[name] = correct
                gap, half_width = gap_with_interval(reference_correct, correct)
                low, high = wilson(int(correct.sum()), len(correct))
                print(
                    f"  {style:22} {name:9} {correct.mean():9.4f}   [{low:.4f}, {high:.4f}]"
                    f" {int((~read).sum()):9d}"
                    f" {gap:+12.2f} [{gap - half_width:+.2f}, {gap + half_width:+.2f}]"
                )
            gap, half_width = gap_with_interval(outcomes["new"], outcomes["baseline"])
            changed = int((outcomes["new"] != outcomes["baseline"]).sum())
            print(
                f"  {style:22} new - baseline: {gap:+.2f} points"
                f" [{gap - half_width:+.2f}, {gap + half_width:+.2f}], {changed} answers changed"
            )
        print(f"  ({kind}: rendered in {rendered_seconds:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--baseline", default=BASELINE, help=f"Git revision (default {BASELINE}).")
    parser.add_argument("--repeats", type=int, default=200, help="Speed repeats (default 200).")
    parser.add_argument("--count", type=int, default=2000, help="Digits per kind (default 2000).")
    parser.add_argument("--split", choices=sorted(SPLITS), default="report")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"Comma-separated: {', '.join(KINDS)} (default all).",
    )
    parser.add_argument("--model", default=None, help="Run directory (default: the shipped model).")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_dir)
    generator = load_module("make_user_digits", HERE / "make_user_digits.py")
    predictor = Predictor.from_run(args.model)
    print(f"cpus: {os.cpu_count()}  load avg: {os.getloadavg()[0]:.2f}  baseline: {args.baseline}")
    with tempfile.TemporaryDirectory(prefix="mnistlab-bench-images-") as folder:
        modules = {"baseline": load_baseline(args.baseline, Path(folder)), "new": images}
        if not args.skip_speed:
            speed(modules, sample_inputs(generator, dataset.test_images), predictor, args.repeats)
        if not args.skip_accuracy:
            kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
            accuracy(modules, generator, dataset, predictor, args.split, args.count, kinds)
    print(f"load avg at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

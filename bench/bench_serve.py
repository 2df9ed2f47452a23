"""How fast `mnistlab serve` answers, under a real HTTP load generator, against a naive baseline.

Starts `mnistlab serve --port 0` as a user would and, in the same run, the naive baseline
(bench/naive_serve.py: Keras ``model.predict`` per request, no MNIST normalisation). Drives both
with `hey` (Debian package `hey`) on 127.0.0.1 only, with bounded request counts, and prints
p50/p95/p99 latency and throughput for a 280x280 canvas PNG and a 12-megapixel phone photo.

Targets (set on a 2-core machine), each printed as PASS or MISS:
- canvas PNG, concurrency 1: p50 <= 5 ms;
- canvas PNG, concurrency 32: 20,000 requests, 0 errors, >= 250 requests/s;
- memory: the server's RSS at the end within 10% of its RSS after the first 1,000 requests.
It also times, in the same run, the code the targets were set against (before `serve`) reading the canvas
in-process (bench/canvas_inprocess.py): the issue measured 6 ms for it on its own machine, so
the ratio says what the 5 ms target corresponds to on this one, printed as a second line.

    .venv/bin/python bench/bench_serve.py [--requests 20000] [--model RUN_DIR] [--no-baseline]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from canvas_inprocess import ISSUE_COMMIT, checkout, measure, scaled_target  # noqa: E402


def canvas_png() -> bytes:
    """A 7 as the page sends it: round white strokes on a black 280x280 canvas."""
    image = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(image)
    pen.line([(80, 60), (200, 60), (120, 230)], fill=255, width=20, joint="curve")
    for x, y in [(80, 60), (120, 230)]:
        pen.ellipse((x - 10, y - 10, x + 10, y + 10), fill=255)
    buffer = io.BytesIO()
    image.convert("RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def phone_photo() -> bytes:
    """A 12-megapixel (4000x3000) JPEG: a dark 7 on unevenly lit, grainy paper."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    paper = 200 + 30 * (x / 4000) - 20 * (y / 3000) + rng.normal(0, 4, (3000, 4000))
    ink = Image.new("L", (4000, 3000), 0)
    pen = ImageDraw.Draw(ink)
    pen.line([(1500, 800), (2400, 800), (1800, 2300)], fill=255, width=110, joint="curve")
    ink = np.asarray(ink.filter(ImageFilter.GaussianBlur(6)), dtype=np.float32) / 255
    pixels = np.clip(paper * (1 - 0.75 * ink), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def start(command: list[str]) -> tuple[subprocess.Popen, str]:
    """Start a server that prints its URL as its first line; wait until it answers."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    line = process.stdout.readline()
    url = next((word for word in line.split() if word.startswith("http://")), None)
    if url is None:
        process.kill()
        raise SystemExit(f"server did not start: {command} printed {line!r}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "openapi.json", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server at {url} did not answer within 120 s")


def rss_mb(process: subprocess.Popen) -> float:
    """Resident memory of the server: the process and its worker processes, in MB."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def hey(url: str, body: Path, content_type: str, requests: int, concurrency: int) -> dict:
    """One `hey` run; latency percentiles from its per-request CSV, throughput from its span.

    hey gives each of its ``concurrency`` workers ``requests // concurrency`` requests, so
    ``requests`` should be a multiple of ``concurrency``; a request without an answer is an error.
    """
    if requests % concurrency:
        raise ValueError(f"requests ({requests}) must be a multiple of concurrency ({concurrency})")
    command = [
        "hey",
        "-n",
        str(requests),
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-T",
        content_type,
        "-D",
        str(body),
        "-t",
        "60",
        "-o",
        "csv",
        url + "api/predict",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    if not rows:
        raise SystemExit(f"hey gave no results: {result.stderr.strip()}")
    latencies = np.array([float(row["response-time"]) for row in rows]) * 1000
    span = max(float(row["offset"]) + float(row["response-time"]) for row in rows)
    errors = sum(row["status-code"] != "200" for row in rows) + (requests - len(rows))
    return {
        "requests": requests,
        "concurrency": concurrency,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "p99": float(np.percentile(latencies, 99)),
        "per_second": len(rows) / span,
        "errors": errors,
    }


def show(server: str, image: str, result: dict) -> None:
    print(
        f"{server:<10} {image:<7} c={result['concurrency']:<3} n={result['requests']:<6}"
        f" p50 {result['p50']:8.2f} ms  p95 {result['p95']:8.2f} ms  p99 {result['p99']:8.2f} ms"
        f"  {result['per_second']:8.1f} req/s  errors {result['errors']}",
        flush=True,
    )


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=20_000,
        help="requests at concurrency 32 (canvas); a multiple of 32",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count(),
        help="mnistlab serve --workers (default: one per CPU)",
    )
    parser.add_argument("--model", help="run directory (default: the shipped model)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive Keras server")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed: apt-get install -y hey")
    model = ["--model", args.model] if args.model else []
    print(
        f"load average before: {load()}  ({os.cpu_count()} CPUs); mnistlab serve --workers {args.workers}",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as folder:
        canvas, photo = Path(folder) / "canvas.png", Path(folder) / "photo.jpg"
        canvas.write_bytes(canvas_png())
        photo.write_bytes(phone_photo())
        print(
            f"canvas PNG {canvas.stat().st_size:,} bytes; photo JPEG 4000x3000 {photo.stat().st_size:,} bytes"
        )

        serve, url = start(
            [
                sys.executable,
                "-c",
                "from mnistlab.cli import main; main()",
                "serve",
                "--port",
                "0",
                "--workers",
                str(args.workers),
                *model,
            ]
        )
        try:
            hey(url, canvas, "image/png", 256, 32)  # warm-up: every worker has answered
            single = hey(url, canvas, "image/png", 1000, 1)
            show("mnistlab", "canvas", single)
            first = hey(url, canvas, "image/png", 1024, 32)
            rss_first = rss_mb(serve)
            rest = hey(url, canvas, "image/png", args.requests - 1024, 32)
            rss_end = rss_mb(serve)
            loaded = {
                "requests": args.requests,
                "concurrency": 32,
                "p50": rest["p50"],
                "p95": rest["p95"],
                "p99": rest["p99"],
                "per_second": rest["per_second"],
                "errors": first["errors"] + rest["errors"],
            }
            show("mnistlab", "canvas", loaded)
            photo_single = hey(url, photo, "image/jpeg", 20, 1)
            show("mnistlab", "photo", photo_single)
            photo_loaded = hey(url, photo, "image/jpeg", 192, 32)
            show("mnistlab", "photo", photo_loaded)
            print(
                f"mnistlab RSS: {rss_first:.0f} MB after the first 1,024 requests at c=32, {rss_end:.0f} MB at the end"
            )
        finally:
            serve.terminate()
            serve.wait(timeout=30)

        if not args.no_baseline:
            naive, naive_url = start(
                [sys.executable, str(HERE / "naive_serve.py"), "--port", "0", *model]
            )
            try:
                # Fewer requests: the baseline answers one at a time, tens of times slower.
                hey(naive_url, canvas, "image/png", 20, 1)  # warm-up
                naive_single = hey(naive_url, canvas, "image/png", 200, 1)
                show("naive", "canvas", naive_single)
                naive_loaded = hey(naive_url, canvas, "image/png", 640, 32)
                show("naive", "canvas", naive_loaded)
                show("naive", "photo", hey(naive_url, photo, "image/jpeg", 20, 1))
                show("naive", "photo", hey(naive_url, photo, "image/jpeg", 64, 32))
            finally:
                naive.terminate()
                naive.wait(timeout=30)
            print(
                f"ratio mnistlab/naive: p50 at c=1 {single['p50'] / naive_single['p50']:.2f}x,"
                f" req/s at c=32 {loaded['per_second'] / naive_loaded['per_second']:.2f}x"
            )

        # The same run's yardstick for the absolute 5 ms: the code the targets were set against.
        with checkout(ISSUE_COMMIT) as issue_src:
            issue_commit_ms = measure(issue_src, canvas)["read_ms"]
        scaled_ms, calibration = scaled_target(issue_commit_ms)
        print(calibration)

    print(f"load average after: {load()}")
    growth = rss_end / rss_first - 1
    targets = [
        (single["p50"] <= 5.0, f"canvas p50 at c=1 <= 5 ms: {single['p50']:.2f} ms"),
        (
            single["p50"] <= scaled_ms,
            f"canvas p50 at c=1 <= 5 ms scaled to this machine ({scaled_ms:.1f} ms):"
            f" {single['p50']:.2f} ms",
        ),
        (
            loaded["errors"] == 0,
            f"{args.requests:,} requests at c=32 with 0 errors: {loaded['errors']} errors",
        ),
        (loaded["per_second"] >= 250, f">= 250 req/s at c=32: {loaded['per_second']:.1f} req/s"),
        (
            abs(growth) <= 0.10,
            f"RSS flat within 10%: {growth:+.1%} ({rss_first:.0f} -> {rss_end:.0f} MB)",
        ),
    ]
    for passed, text in targets:
        print(f"{'PASS' if passed else 'MISS'} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How `mnistlab serve` answers under load, against its own in-process cost measured in the same run.

Starts `mnistlab serve --port 0 --workers 2` as a user would and drives it on 127.0.0.1 with
bench/http_load.py, a keep-alive HTTP/1.1 client on asyncio (uvloop): one connection per
concurrent client, the next request sent as soon as the last answer is read (a 503 included,
as `hey` does), bounded counts. Each client is answered once before the clock starts. Three
parts, each printed with PASS or MISS:

1. Canvas PNG at concurrency 1: the server's p50 <= 1.5x the in-process p50 of the same image
   through the same functions /api/predict calls (open, decode, normalise, model, preview PNG
   and its base64 in the answer), timed in this process; the two alternate for ``--rounds``.
2. Soak: ``--soak-requests`` (100,000) at concurrency 64, 80% canvas drawings, 10% photos (a
   1600x1200 JPEG of a digit on paper), 10% bad uploads (a text file, text named .png, a
   truncated PNG, an empty body): no 5xx but 503, every bad upload a 4xx (or 503), the server's RSS
   (main process and workers, from /proc, at rest: idle long enough for the workers to hand
   freed memory back) at the end within 5% of its RSS after the first 10%.
3. Overload: canvas PNGs at concurrency 16, then 256, with the default --max-in-flight, each
   until ``--overload-requests`` 200s have come back: only 200s and 503s, and the p99 of the
   200s at 256 <= 3x the p99 at 16. The 503s are answered at once and their clients ask again
   at once, so most of the 256's requests are 503s.

The load generator runs on the same cores as the server; its CPU seconds are printed beside the
server's. ``--save`` writes the rows to bench/results/serve.json (python bench/tables.py renders
them). Run it alone on the machine:

    flock /tmp/mnistlab-timing.lock .venv/bin/python bench/bench_serve.py --save
    .venv/bin/python bench/bench_serve.py --soak-requests 10000 --overload-requests 2000  # quick

``--parts overload`` runs one part; ``--source OTHER/src`` serves another checkout's mnistlab
(e.g. ``git worktree add /tmp/old HEAD``), to compare the two on one machine in one sitting.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mnistlab import images
from mnistlab.predict import DEFAULT_MIN_CONFIDENCE, Predictor, classify, read_digit
from mnistlab.renderers import photograph
from mnistlab.serve.traffic import IDLE_TRIM_SECONDS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # also when imported from elsewhere
from http_load import Load, rss_mb, run_load, start_server  # noqa: E402
from measured import where  # noqa: E402

RESULTS = HERE / "results" / "serve.json"
WORKERS = 2
CANVAS_RATIO_TARGET = 1.5
RSS_GROWTH_TARGET = 0.05
OVERLOAD_P99_TARGET = 3.0
PHOTO_SIZE = (1600, 1200)
SOAK_REQUESTS = 100_000


# --- What is sent -------------------------------------------------------------------------------


def canvas_png() -> bytes:
    """A 7 as the page sends it: round white strokes on a black 280x280 RGBA canvas."""
    image = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(image)
    pen.line([(80, 60), (200, 60), (120, 230)], fill=255, width=20, joint="curve")
    for x, y in [(80, 60), (120, 230)]:
        pen.ellipse((x - 10, y - 10, x + 10, y + 10), fill=255)
    buffer = io.BytesIO()
    image.convert("RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def photo_jpeg() -> bytes:
    """A 1600x1200 phone photo of a pen-drawn 7 on unevenly lit paper, JPEG quality 85."""
    width, height = PHOTO_SIZE
    ink = Image.new("L", (width, height), 0)
    ImageDraw.Draw(ink).line(
        [(620, 330), (1040, 350), (760, 900)], fill=255, width=38, joint="curve"
    )
    ink = np.asarray(ink.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64) / 255
    buffer = io.BytesIO()
    photograph(ink, np.random.default_rng(7)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def bad_uploads(canvas: bytes) -> list[tuple[str, bytes]]:
    """What people send by mistake, each of which must be a 4xx: (Content-Type, body)."""
    return [
        ("text/plain", b"shopping list: milk, eggs\n" * 20),  # a text file
        ("image/png", b"shopping list: milk, eggs\n" * 20),  # text named .png
        ("image/png", canvas[: len(canvas) // 2]),  # a truncated PNG
        ("image/png", b""),  # an empty body
    ]


# --- The in-process baseline --------------------------------------------------------------------


def in_process_answer(data: bytes, predictor: Predictor) -> dict:
    """What /api/predict does with a small image, without HTTP: app.predict's steps."""
    prediction = read_digit(images.open_image(data))
    classify([prediction], predictor, DEFAULT_MIN_CONFIDENCE)
    answer = prediction.to_dict()
    answer["preview_png_base64"] = base64.b64encode(prediction.preview_png()).decode("ascii")
    return answer


def in_process_ms(data: bytes, predictor: Predictor, count: int) -> np.ndarray:
    times = np.empty(count)
    for index in range(count):
        started = time.perf_counter()
        in_process_answer(data, predictor)
        times[index] = time.perf_counter() - started
    return times * 1e3


# --- The three parts ----------------------------------------------------------------------------


def pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def verdict(passed: bool, text: str) -> tuple[bool, str]:
    print(f"{'PASS' if passed else 'MISS'} {text}", flush=True)
    return passed, text


def show(name: str, load: Load) -> None:
    ok = load.latencies(status=200)
    print(
        f"{name}: {len(load.ms):,} requests in {load.seconds:.1f} s"
        f" ({len(load.ms) / load.seconds:.0f}/s); statuses {load.counts()};"
        f" 200s p50 {fmt(pct(ok, 50))} ms p99 {fmt(pct(ok, 99))} ms;"
        f" CPU s: server {load.server_cpu:.1f}, load generator {load.client_cpu:.1f};"
        f" slowest first answer on a new connection {load.first_ms:.0f} ms",
        flush=True,
    )


def canvas_part(args, server, host, port, canvas, predictor) -> dict:
    """Server at concurrency 1 against in-process, alternating rounds; pooled p50s."""
    answer = in_process_answer(canvas, predictor)
    print(f"canvas: {len(canvas):,} bytes, read as {answer['label']}"
          f" ({answer['confidence']:.3f})")  # fmt: skip
    in_process_ms(canvas, predictor, 200)  # warm-up
    run_load(host, port, [("canvas", "image/png", canvas)] * 200, 1, server)
    local, remote = [], []
    for round_ in range(args.rounds):
        local.append(in_process_ms(canvas, predictor, args.single_requests))
        load = run_load(host, port, [("canvas", "image/png", canvas)] * args.single_requests,
                        1, server)  # fmt: skip
        if load.counts() != {200: args.single_requests}:
            raise SystemExit(f"canvas at concurrency 1: statuses {load.counts()}")
        remote.append(load.latencies())
        print(
            f"round {round_ + 1}: in-process p50 {np.median(local[-1]):.3f} ms,"
            f" server at c=1 p50 {np.median(remote[-1]):.3f} ms",
            flush=True,
        )
    local_all, remote_all = np.concatenate(local), np.concatenate(remote)
    return {
        "in_process": {"p50": pct(local_all, 50), "p99": pct(local_all, 99)},
        "server": {
            "p50": pct(remote_all, 50),
            "p99": pct(remote_all, 99),
            "requests": len(remote_all),
        },  # fmt: skip
    }


def soak_schedule(count: int, canvas: bytes, photo: bytes, bad: list) -> list:
    rng = random.Random(0)
    kinds = ["canvas"] * 8 + ["photo", "bad"]
    schedule = []
    for index in range(count):
        kind = kinds[index % 10]
        if kind == "canvas":
            schedule.append(("canvas", "image/png", canvas))
        elif kind == "photo":
            schedule.append(("photo", "image/jpeg", photo))
        else:
            schedule.append(("bad", *bad[index // 10 % len(bad)]))
    rng.shuffle(schedule)
    return schedule


PARTS = ("canvas", "soak", "overload")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (canvas, c=1)")
    parser.add_argument(
        "--single-requests",
        type=int,
        default=1000,
        help="requests per round at concurrency 1, and in-process repetitions",
    )
    parser.add_argument("--soak-requests", type=int, default=SOAK_REQUESTS)
    parser.add_argument(
        "--overload-requests",
        type=int,
        default=10_000,
        help="200s at concurrency 16, and again at 256 (with the 503s besides)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="mnistlab serve --max-in-flight (default: its default)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"the parts to run, comma-separated (default: {','.join(PARTS)})",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="serve the mnistlab of this src folder instead (another checkout's, to compare)",
    )
    parser.add_argument(
        "--save", action="store_true", help="write bench/results/serve.json (defaults only)"
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        parser.error(f"--parts: choose among {', '.join(PARTS)}")
    if args.save and (
        args.max_in_flight is not None
        or args.soak_requests < SOAK_REQUESTS
        or set(parts) != set(PARTS)
        or args.source is not None
    ):
        parser.error(
            "--save records the targets' own settings: no --max-in-flight or --source,"
            " every part, the full soak"
        )
    options = () if args.max_in_flight is None else ("--max-in-flight", str(args.max_in_flight))
    # Read when the server starts: others may commit meanwhile.
    measured, load_before = where(), os.getloadavg()[0]
    machine = measured["machine"]
    served = f" (mnistlab from {args.source})" if args.source else ""
    print(
        f"machine: {machine}; load average {load_before:.2f};"
        f" mnistlab serve --workers {WORKERS} {' '.join(options)}{served}; load generator:"
        " keep-alive HTTP/1.1 client on asyncio + uvloop in this process, on the same cores",
        flush=True,
    )
    canvas, photo = canvas_png(), photo_jpeg()
    bad = bad_uploads(canvas)
    print(f"photo: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, {len(photo):,} bytes")
    predictor = Predictor.from_run(None, threads=1)  # as the server loads it
    in_process_ms(photo, predictor, 3)
    photo_ms = float(np.median(in_process_ms(photo, predictor, 30)))
    print(f"photo in-process p50 {photo_ms:.1f} ms")
    started = time.perf_counter()
    process, host, port = start_server(WORKERS, *options, source=args.source)
    server = process.pid
    single = soak = calm = storm = None
    try:
        # Every worker has read canvases and photos before anything is timed.
        run_load(host, port, soak_schedule(2000, canvas, photo, bad), 8, server)
        if "canvas" in parts:
            single = canvas_part(args, server, host, port, canvas, predictor)
        if "soak" in parts:
            soak = soak_part(args, server, host, port, soak_schedule(args.soak_requests, canvas,
                                                                     photo, bad))  # fmt: skip
        if "overload" in parts:
            # As many 200s at each concurrency: p99s of samples of one size, each over a
            # stretch of time long enough that a pause of the shared machine is not its tail.
            overload = [("canvas", "image/png", canvas)]
            calm = run_load(host, port, overload, 16, server, answered=args.overload_requests)
            show("overload, c=16", calm)
            storm = run_load(host, port, overload, 256, server, answered=args.overload_requests)
            show("overload, c=256", storm)
    finally:
        process.terminate()
        process.wait(timeout=30)
    load_after = os.getloadavg()[0]
    print(f"wall time {time.perf_counter() - started:.0f} s; load average after {load_after:.2f}")
    targets = []
    if single is not None:
        ratio = single["server"]["p50"] / single["in_process"]["p50"]
        targets.append(
            verdict(
                ratio <= CANVAS_RATIO_TARGET,
                f"canvas p50 at c=1 <= {CANVAS_RATIO_TARGET}x in-process:"
                f" {single['server']['p50']:.2f} ms / {single['in_process']['p50']:.2f} ms"
                f" = {ratio:.2f}x",
            )
        )
    if soak is not None:
        targets += soak_verdicts(soak)
    if storm is not None:
        targets += overload_verdicts(calm, storm)
    if args.save:
        save(
            args,
            measured,
            single,
            soak,
            calm,
            storm,
            (len(photo), photo_ms),
            targets,
            (load_before, load_after),
        )
    return 0


def rss_at_rest(server) -> float:
    """The RSS once the workers have been idle long enough to trim their heaps."""
    time.sleep(IDLE_TRIM_SECONDS + 1)
    return rss_mb(server)


def soak_part(args, server, host, port, schedule) -> Load:
    """The soak at 64 clients. The RSS is read at rest, after the first tenth and at the end,
    so that what requests in flight hold (a photo's buffers) does not count as growth; samples
    under load every tenth are printed too."""
    tenth = max(len(schedule) // 10, 1)
    soak = run_load(host, port, schedule[:tenth], 64, server)
    warm = rss_at_rest(server)
    soak = soak.then(run_load(host, port, schedule[tenth:], 64, server, rss_every=tenth))
    soak.rss = [(tenth, warm), *soak.rss[:-1], (len(soak.ms), rss_at_rest(server))]
    show("soak, c=64", soak)
    for kind in ("canvas", "photo", "bad"):
        ms = soak.latencies(kind)
        print(
            f"  soak {kind:6s} statuses {soak.counts(kind)} p50 {fmt(pct(ms, 50))} ms"
            f" p99 {fmt(pct(ms, 99))} ms"
        )
    print(
        "  soak RSS (MiB) after N answers (first and last at rest): "
        + ", ".join(f"{done:,}: {mb:.0f}" for done, mb in soak.rss)
    )
    return soak


def soak_verdicts(soak: Load) -> list[tuple[bool, str]]:
    bad_codes = soak.counts("bad")
    server_errors = {s: n for s, n in soak.counts().items() if s >= 500 and s != 503 or s == 0}
    rss_warm, rss_end = soak.rss[0][1], soak.rss[-1][1]
    growth = rss_end / rss_warm - 1
    return [
        verdict(
            not server_errors and all(400 <= s < 500 or s == 503 for s in bad_codes),
            f"soak: no 5xx but 503 and every bad upload a 4xx (or 503 when busy):"
            f" other 5xx or failed {sum(server_errors.values())}, bad uploads {bad_codes}",
        ),
        verdict(
            growth <= RSS_GROWTH_TARGET,
            f"soak RSS growth <= {RSS_GROWTH_TARGET:.0%}: {rss_warm:.0f} MiB after"
            f" {soak.rss[0][0]:,} -> {rss_end:.0f} MiB at {soak.rss[-1][0]:,} ({growth:+.1%})",
        ),
    ]


def overload_verdicts(calm: Load, storm: Load) -> list[tuple[bool, str]]:
    calm_p99, storm_p99 = (pct(load.latencies(status=200), 99) for load in (calm, storm))
    storm_other = {s: n for s, n in storm.counts().items() if s not in (200, 503)}
    return [
        verdict(not storm_other, f"overload c=256: only 200 and 503: {storm.counts()}"),
        verdict(
            storm_p99 is not None and storm_p99 <= OVERLOAD_P99_TARGET * calm_p99,
            f"overload: p99 of the 200s at c=256 <= {OVERLOAD_P99_TARGET:g}x c=16:"
            f" {fmt(storm_p99)} ms / {fmt(calm_p99)} ms"
            f" = {(storm_p99 or float('nan')) / calm_p99:.2f}x",
        ),
    ]


def save(args, measured, single, soak, calm, storm, photo, targets, load_averages) -> None:
    """The rows of docs/performance.md's Serving table, written atomically."""
    server = f"mnistlab serve --workers {WORKERS}"

    def row(what, input_, clients, load, status=None, kind=None, **extra):
        ms, counts = load.latencies(kind, status), load.counts(kind)
        return {"what": what, "server": server, "input": input_, "clients": clients,
                "requests": sum(counts.values()),
                "statuses": {str(s): n for s, n in counts.items()},
                "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2),
                **extra, **measured}  # fmt: skip

    rss, share = soak.rss, soak.client_cpu / (soak.client_cpu + soak.server_cpu)
    storm_vs_calm = pct(storm.latencies(status=200), 99) / pct(calm.latencies(status=200), 99)
    inputs = {"canvas": "280x280 canvas PNG", "photo": "photo JPEG", "bad": "bad uploads"}
    rows = [
        {
            "what": "canvas",
            "server": "in-process, no HTTP",
            "input": inputs["canvas"],
            "clients": 1,
            "requests": args.rounds * args.single_requests,
            "statuses": {},
            "p50_ms": round(single["in_process"]["p50"], 2),
            "p99_ms": round(single["in_process"]["p99"], 2),
            **measured,
        },  # fmt: skip
        {
            "what": "canvas",
            "server": server,
            "input": inputs["canvas"],
            "clients": 1,
            "requests": single["server"]["requests"],
            "statuses": {"200": single["server"]["requests"]},
            "p50_ms": round(single["server"]["p50"], 2),
            "p99_ms": round(single["server"]["p99"], 2),
            "note": f"p50 {single['server']['p50'] / single['in_process']['p50']:.2f}x in-process",
            **measured,
        },  # fmt: skip
        row(
            "soak",
            "80% canvas, 10% photo, 10% bad uploads",
            64,
            soak,
            note=f"RSS {rss[0][1]:.0f} -> {rss[-1][1]:.0f} MiB ({rss[-1][1] / rss[0][1] - 1:+.1%})"
            f" from {rss[0][0]:,} answers to the end",
        ),
        *(row("soak", inputs[kind], 64, soak, kind=kind) for kind in inputs),
        row("overload", inputs["canvas"], 16, calm, status=200),
        row(
            "overload",
            inputs["canvas"],
            256,
            storm,
            status=200,
            note=f"p99 of the 200s {storm_vs_calm:.2f}x c=16",
        ),
    ]
    result = {
        "photo": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG of a pen-drawn 7 on paper,"
        f" {photo[0]:,} bytes, read in-process in {photo[1]:.0f} ms (p50)",
        "load_generator": "Load: a keep-alive HTTP/1.1 client (asyncio on uvloop) in the"
        " benchmark's process, on the same cores as the server; during the soak it used"
        f" {soak.client_cpu:.1f} CPU s to the server's {soak.server_cpu:.1f} ({share:.0%})."
        " p50 and p99 are of every answer, or of the 200s in the overload rows. Load average"
        f" {load_averages[0]:.1f} before, {load_averages[1]:.1f} after (a shared machine).",
        "command": "python bench/bench_serve.py --save",
        "targets": [{"passed": passed, "target": text} for passed, text in targets],
        "rows": rows,
    }
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, delete=False, suffix=".tmp") as f:
        f.write(json.dumps(result, indent=1) + "\n")
    os.replace(f.name, RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())

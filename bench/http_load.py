"""The load generator of bench_serve.py: `mnistlab serve` started as a user starts it, a
keep-alive HTTP/1.1 client on asyncio (uvloop), and the server's memory and CPU from /proc.

One connection per concurrent client; each sends its next request as soon as it has read the
last answer. Only for servers on this machine (127.0.0.1), with bounded request counts.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uvloop


# --- The server ---------------------------------------------------------------------------------


def start_server(
    workers: int, *options: str, source: Path | None = None
) -> tuple[subprocess.Popen, str, int]:
    """`mnistlab serve --port 0 --workers N ...`; the process, host and port once ready.
    ``source``: a ``src`` folder whose mnistlab to serve instead (another checkout's)."""
    command = [sys.executable, "-c", "from mnistlab.cli import main; main()", "serve",
               "--port", "0", "--workers", str(workers), *options]  # fmt: skip
    environment = dict(os.environ)
    if source is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(source), *filter(None, [environment.get("PYTHONPATH")])]
        )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=environment)  # fmt: skip
    line = process.stdout.readline()
    url = next((word for word in line.split() if word.startswith("http://")), None)
    if url is None:
        process.kill()
        raise SystemExit(f"the server did not start: it printed {line!r}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/ready", timeout=5):
                host, port = url.removeprefix("http://").strip("/").rsplit(":", 1)
                return process, host, int(port)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server at {url} was not ready within 120 s")


def server_pids(root: int) -> list[int]:
    """The server's process and every process below it (uvicorn's workers)."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = task / "children"
            if children.exists():
                queue += [int(child) for child in children.read_text().split()]
    return pids


def rss_mb(root: int) -> float:
    """Resident memory of the server, main process and workers together, in MiB."""
    total = 0
    for pid in server_pids(root):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(root: int) -> float:
    """User and system CPU seconds of the server's processes so far."""
    ticks = 0
    for pid in server_pids(root):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- The load generator -------------------------------------------------------------------------


@dataclass
class Load:
    """Every request's kind, status and latency, in the order they finished."""

    kinds: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    first_ms: float = 0.0  # the slowest first answer on a new connection (not in ``ms``)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    rss: list[tuple[int, float]] = field(default_factory=list)  # (requests done, MiB)

    def latencies(self, kind: str | None = None, status: int | None = None) -> np.ndarray:
        return np.array([ms for k, s, ms in zip(self.kinds, self.statuses, self.ms)
                         if kind in (None, k) and status in (None, s)])  # fmt: skip

    def then(self, later: Load) -> Load:
        """This load and a later one on the same server, as one."""
        return Load(self.kinds + later.kinds, self.statuses + later.statuses, self.ms + later.ms,
                    self.seconds + later.seconds, max(self.first_ms, later.first_ms),
                    self.client_cpu + later.client_cpu, self.server_cpu + later.server_cpu,
                    self.rss + [(len(self.ms) + done, mb) for done, mb in later.rss])  # fmt: skip

    def counts(self, kind: str | None = None) -> dict[int, int]:
        found: dict[int, int] = {}
        for k, status in zip(self.kinds, self.statuses):
            if kind in (None, k):
                found[status] = found.get(status, 0) + 1
        return dict(sorted(found.items()))


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, content_type: str, body: bytes) -> int:
        """Send one POST and read its whole answer; its status (0: the connection failed)."""
        if self.writer is None:
            await self.open()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        try:
            self.writer.write(head + body)
            headers = await self.reader.readuntil(b"\r\n\r\n")
            lines = headers.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            await self.reader.readexactly(int(fields.get("content-length", 0)))
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return 0
        if fields.get("connection") == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(host: str, port: int, schedule: list[tuple[str, str, bytes]], concurrency: int,
                server: int, rss_every: int = 0, answered: int = 0) -> Load:  # fmt: skip
    """Send ``schedule`` (kind, Content-Type, body) with ``concurrency`` clients; each sends its
    next request as soon as it has read the last answer, a 503 included (as `hey` does).
    Samples the server's RSS every ``rss_every`` answers. With ``answered``, the schedule
    repeats until that many 200s have come back (and those in flight then), 503s besides."""
    load = Load()
    position = ok = 0

    def more() -> bool:
        return ok < answered if answered else position < len(schedule)

    async def client(connection: Connection) -> None:
        nonlocal position, ok
        while more():
            kind, content_type, body = schedule[position % len(schedule)]
            position += 1
            started = time.perf_counter()
            status = await connection.post("/api/predict", content_type, body)
            load.ms.append((time.perf_counter() - started) * 1e3)
            load.kinds.append(kind)
            load.statuses.append(status)
            ok += status == 200
            if rss_every and len(load.ms) % rss_every == 0:
                load.rss.append((len(load.ms), rss_mb(server)))
        connection.close()

    # Each client connects and is answered once before the clock starts: what is timed is the
    # answers, not a burst of new connections (which wait to be accepted by busy workers;
    # ``Load.first_ms`` keeps how long their first answers took).
    connections = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(connection.open() for connection in connections))
    first = await asyncio.gather(*(timed_first(connection, *schedule[0][1:])
                                   for connection in connections))  # fmt: skip
    load.first_ms = float(np.max(first))
    cpu, server_cpu, started = own_cpu_seconds(), cpu_seconds(server), time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    load.seconds = time.perf_counter() - started
    load.client_cpu = own_cpu_seconds() - cpu
    load.server_cpu = cpu_seconds(server) - server_cpu
    return load


async def timed_first(connection: Connection, content_type: str, body: bytes) -> float:
    started = time.perf_counter()
    await connection.post("/api/predict", content_type, body)
    return (time.perf_counter() - started) * 1e3


def run_load(*args, **kwargs) -> Load:
    return uvloop.run(drive(*args, **kwargs))

"""The router's memory under the slow-client and large-body cases of issue 15.

Starts the real `modeldeploy-router` (static mode, default flags but a 64 MiB body limit, the shadow
in its child process) before scripted loopback backends run here, drives one
case at a time and samples the resident memory of the router and its shadow
child every 20 ms (/proc). Prints the peak per case; the target is under
150 MiB each. Run from the repository root:

    .venv/bin/python -m benchmarks.router.memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from modeldeploy_devcluster.procs import free_port

ROUTER = Path(sys.executable).with_name("modeldeploy-router")
MiB = 1024 * 1024


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` plus its children (the shadow process)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)


# -- backends ----------------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines) if k}


async def sink(reader, writer) -> None:
    """Reads each request (any body size) and answers 200 with a small body."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        while True:
            head = await read_head(reader)
            left = int(head.get("content-length", "0"))
            while left:
                left -= len(await reader.read(min(left, MiB)))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()


async def huge(reader, writer) -> None:
    """Answers with a 200 MB body."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        await read_head(reader)
        size = 200 * 1000 * 1000
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"h" * MiB
        sent = 0
        while sent < size:
            part = chunk[: min(MiB, size - sent)]
            writer.write(part)
            sent += len(part)
            await writer.drain()


async def hang(reader, writer) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        await read_head(reader)
        await asyncio.sleep(3600)


# -- cases -------------------------------------------------------------------------------


async def slow_heads(port: int) -> None:
    """2000 connections each holding an unfinished request head for 3 s."""
    conns = []
    for _ in range(2000):
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append(w)
    await asyncio.sleep(3)
    for w in conns:
        w.transport.abort()


async def pipelined_bodies(port: int) -> None:
    """One connection pipelining 17 POSTs of 64 MiB (issue 15: 1.2 GB held)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"b" * (64 * MiB - 1)

    async def send() -> None:
        for _ in range(17):
            writer.write(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            await writer.drain()

    sender = asyncio.create_task(send())
    for _ in range(17):
        await read_head(reader)
        await reader.readexactly(2)
    await sender
    writer.close()


async def huge_answer_slow_reader(port: int) -> None:
    """A 200 MB answer read by a client at about 50 MB/s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /huge HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await read_head(reader)
    left = int(head["content-length"])
    while left:
        left -= len(await reader.read(min(left, MiB)))
        await asyncio.sleep(0.02)
    writer.close()


async def hanging_shadow(port: int) -> None:
    """1000 mirrored requests of 1 MB to a shadow that never answers."""
    body = b'{"instances": [[1, 2]], "pad": "' + b"p" * (1000 * 1000) + b'"}'
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem:
                (
                    await client.post(f"http://127.0.0.1:{port}/predict", content=body)
                ).raise_for_status()

        await asyncio.gather(*(one() for _ in range(1000)))


CASES: dict[str, tuple[Callable, Callable[[int], Awaitable[None]]]] = {
    "2000 slow request heads": (sink, slow_heads),
    "17 x 64 MiB pipelined bodies": (sink, pipelined_bodies),
    "200 MB answer, slow reader": (huge, huge_answer_slow_reader),
    "1000 x 1 MB mirrored to a hanging shadow": (sink, hanging_shadow),
}


async def run_case(name: str, backend, drive, log: Path) -> tuple[int, int]:
    server = await asyncio.start_server(backend, "127.0.0.1", 0)
    shadow = await asyncio.start_server(hang, "127.0.0.1", 0)
    up = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    shadow_url = f"http://127.0.0.1:{shadow.sockets[0].getsockname()[1]}"
    port = free_port()
    cmd = [str(ROUTER), "--port", str(port), "--backend", f"stable={up}", "--log-level", "warning"]
    cmd += ["--max-body-bytes", str(64 * MiB)]  # the 64 MiB bodies (default 16 MiB)
    if "shadow" in name:
        cmd += ["--shadow", shadow_url]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        idle = rss_kib(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        started = time.monotonic()
        await drive(port)
        sampler.running = False
        sampler.join()
        print(f"  {name:<44} {time.monotonic() - started:6.1f} s  idle {idle / 1024:6.1f} MiB"
              f"  peak {sampler.peak / 1024:6.1f} MiB", flush=True)  # fmt: skip
        return idle, sampler.peak
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        server.close()
        shadow.close()


async def main(only: list[str] | None, log: Path) -> None:
    for name, (backend, drive) in CASES.items():
        if only and not any(o in name for o in only):
            continue
        await run_case(name, backend, drive, log)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", action="append", help="run the cases whose name contains this")
    p.add_argument("--log", type=Path, default=Path("/tmp/router-memory.log"))
    args = p.parse_args()
    print("router resident memory (router + shadow process), target < 150 MiB", flush=True)
    import uvloop

    uvloop.run(main(args.only, args.log))

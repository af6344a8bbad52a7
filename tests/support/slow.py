"""Slow clients: connections that send a request a byte at a time (slowloris)."""

from __future__ import annotations

import asyncio
import time


async def trickle(host: str, port: int, interval: float, started: float) -> tuple[float, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(100), interval)
                return time.monotonic() - started, answer
            except TimeoutError:
                continue
        return time.monotonic() - started, b""
    except ConnectionError:
        return time.monotonic() - started, b"reset"
    finally:
        writer.close()

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


async def trickle_body(host: str, port: int, path: str, body: bytes, interval: float) -> bytes:
    """A POST whose headers arrive at once and whose body arrives a byte every `interval` seconds;
    returns what the server answered until it closed the connection (b"" if it said nothing; what
    came within 5 s if it kept the connection open)."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        writer.write(head)
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                first = await asyncio.wait_for(reader.read(1000), interval)
                break
            except TimeoutError:
                continue
        else:
            first = b""
        answer = first
        try:
            while first:
                first = await asyncio.wait_for(reader.read(1000), 5)
                answer += first
        except TimeoutError:
            pass
        return answer
    except ConnectionError:
        return b""
    finally:
        writer.close()

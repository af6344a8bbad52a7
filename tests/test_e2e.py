"""End to end: a real uvicorn process on a free loopback port, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from checkpoint_format import sha256_hex, write_manifest
from tests.support.server import ServerError, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        yield srv.url


def test_models_listed(server: str) -> None:
    data = httpx.get(f"{server}/models").json()
    assert data["count"] == 5 and data["default"] == "names"


def test_generate_with_seed_reproduces(server: str) -> None:
    body = {"n": 10, "seed": 42, "model": "names"}
    a = httpx.post(f"{server}/generate", json=body).json()
    b = httpx.get(f"{server}/generate", params=body).json()
    assert a["names"] == b["names"] and a["count"] == 10 and a["seed"] == 42


def test_next_char_sums_to_one(server: str) -> None:
    dist = httpx.get(f"{server}/next-char", params={"prefix": "emm"}).json()["distribution"]
    assert math.isclose(sum(d["prob"] for d in dist), 1.0, abs_tol=1e-9)


def test_errors(server: str) -> None:
    bad = httpx.get(f"{server}/generate", params={"n": 0})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "n"]
    missing = httpx.get(f"{server}/models/nope")
    assert missing.status_code == 404 and "names-female" in missing.json()["detail"]


GET_END = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _raw_request(server: str, request: bytes) -> bytes:
    """Send bytes as they are (httpx would refuse or normalise them) and read the answer."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_hostile_requests_over_real_http(server: str) -> None:
    """What only a real server sees: raw paths, a URL too long to parse, bytes that are not JSON."""
    for path in (b"/models/../../etc/passwd", b"/models/..%2f..%2fetc%2fpasswd", b"/models/%2e%2e%2fmain.py",
                 b"/generate?model=..%2f..%2fetc%2fpasswd", b"/next-char?prefix=%00%ff"):  # fmt: skip
        answer = _raw_request(server, b"GET " + path + GET_END)
        status = answer.split(b" ", 2)[1]
        assert status in (b"404", b"422"), (path, answer[:200])
    too_long = b"GET /generate?prefix=" + b"a" * 200_000 + GET_END  # over the header block's cap
    assert _raw_request(server, too_long).startswith(b"HTTP/1.1 431 ")
    for body in (b'{"temperature": NaN}', b'{"prefix": "\\ud800"}', b"[" * 100_000, b'{"prefix": "\xff"}'):
        r = httpx.post(f"{server}/generate", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422), (body[:40], r.status_code, r.text[:200])
        assert r.json()["detail"]
    assert httpx.get(f"{server}/healthz").status_code == 200  # and it is still serving


def test_same_seed_same_names_under_concurrent_load(server: str) -> None:
    """48 different requests at once, each then repeated alone: every answer is the same."""
    bodies = [
        {
            "model": ["names", "names-female", "names-male", "surnames"][i % 4],
            "n": 1 + (i * 7) % 60,
            "seed": 1000 + i,
            "temperature": [0.7, 1.0, 1.3][i % 3],
            "top_k": [None, 5, 12][i % 3],
            "prefix": ["", "a", "ma"][i % 3],
            "novel": i % 2 == 0,
        }
        for i in range(48)
    ]

    async def fire() -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=server, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/generate", json=b) for b in bodies))
        assert all(r.status_code == 200 for r in responses)
        return [r.json() for r in responses]

    concurrent = asyncio.run(fire())
    again = asyncio.run(fire())
    with httpx.Client(base_url=server, timeout=60) as client:
        alone = [client.post("/generate", json=b).json() for b in bodies]
    assert [c["names"] for c in concurrent] == [a["names"] for a in alone] == [g["names"] for g in again]
    assert len({tuple(c["names"]) for c in concurrent}) == 48


def test_bad_checkpoint_stops_the_server_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    write_manifest(tmp_path, {"broken.pt": sha256_hex(b"not a checkpoint")})  # listed: its bytes are read
    with pytest.raises(ServerError) as info, serve(env={"NAMEGEN_MODELS_DIR": str(tmp_path)}):
        pass
    log = str(info.value)
    assert "uvicorn exited with 3" in log
    assert f"cannot start: {tmp_path / 'broken.pt'}: not a zip archive" in log
    assert "Traceback" not in log

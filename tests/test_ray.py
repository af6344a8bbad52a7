"""namegen on Ray Serve, on a local Ray cluster started by this test (the CPUs pinned to 2, no
dashboard): the HTTP contract through Serve's proxy with 2 replicas, both replicas answering, the
same names from either, a replica killed during a burst, and a checkpoint folder that fails to
load. Needs the ray extra (.ci/run installs it); skipped, with the reason, without it."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from checkpoint_format import sha256_hex, write_manifest
from tests.support import REPO
from tests.support.server import free_port

pytestmark = [
    pytest.mark.e2e,
    # Ray's own imports and shutdown raise these; they are Ray's, not the project's
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
serve = pytest.importorskip("ray.serve")

APP = "namegen"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from app.ray_serve import build

    # a 2-core machine starting Ray and torch at once is slow: give the proxy time to come up
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    # the replicas name themselves in X-Served-By (NAMEGEN_* settings are passed on to them)
    os.environ["NAMEGEN_SERVED_BY_HEADER"] = "true"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    port = free_port()
    timeout = yaml.safe_load((REPO / "deploy" / "ray" / "serve.yaml").read_text())["http_options"][
        "request_timeout_s"
    ]
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": timeout})
        serve.run(build({"replicas": "2"}), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        del os.environ["NAMEGEN_SERVED_BY_HEADER"]
        serve.shutdown()
        ray.shutdown()


def replica_states() -> dict[str, int]:
    states: dict[str, int] = serve.status().applications[APP].deployments["namegen"].replica_states
    return states


def test_the_http_contract_through_the_proxy(cluster: str) -> None:
    with httpx.Client(base_url=cluster, timeout=60) as client:
        models = client.get("/models").json()
        assert models["count"] >= 4 and models["default"] == "names"
        body = {"n": 8, "seed": 42, "prefix": "ka"}
        post = client.post("/generate", json=body).json()
        get = client.get("/generate", params=body).json()
        assert post["names"] == get["names"] and post["count"] == 8
        dist = client.get("/next-char", params={"prefix": "emm"}).json()["distribution"]
        assert math.isclose(sum(d["prob"] for d in dist), 1.0, abs_tol=1e-9)
        scores = client.post("/score", json={"names": ["emma", "xqzv"]}).json()["scores"]
        assert scores[0]["nats_per_char"] < scores[1]["nats_per_char"]
        bad = client.get("/generate", params={"n": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "n"]
        assert client.get("/models/klingon").status_code == 404
        assert client.get("/readyz").json()["status"] == "ready"


def test_both_replicas_answer_with_the_same_names_for_a_seed(cluster: str) -> None:
    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=cluster, timeout=60) as client:
            return list(
                await asyncio.gather(
                    *(client.get("/generate", params={"n": 5, "seed": 7}) for _ in range(60))
                )
            )

    responses = asyncio.run(many())
    by = {r.headers["x-served-by"] for r in responses}
    assert len(by) == 2, by  # two processes answered
    assert len({tuple(r.json()["names"]) for r in responses}) == 1  # whichever answered, the same names


def replica_actors() -> set[str]:
    """The names of the app's live replica actors."""
    return {
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{APP}#")
    }  # fmt: skip


def test_a_killed_replica_is_replaced_and_later_requests_succeed(cluster: str) -> None:
    original = replica_actors()
    assert len(original) == 2

    async def burst() -> tuple[list[int], list[int]]:
        # bounded by counts, not by time, so that it straddles the kill on a fast machine as on a
        # slow one: the kill waits for requests to have been answered, and each client goes on
        # until it has sent `after_each` requests after the kill (at most `cap` in all)
        before: list[int] = []
        after: list[int] = []
        killed = asyncio.Event()
        after_each, cap = 10, 2000

        async def client_loop(client: httpx.AsyncClient) -> None:
            sent_after = 0
            for i in range(cap):
                if sent_after >= after_each:
                    return
                is_after = killed.is_set()
                sent_after += is_after
                try:
                    status = (await client.get("/generate", params={"n": 3, "seed": i})).status_code
                except httpx.TransportError:
                    status = -1
                (after if is_after else before).append(status)

        async def kill() -> None:
            while len(before) < 8:  # the burst is under way
                await asyncio.sleep(0.01)
            victim = ray.get_actor(min(original), namespace="serve")
            ray.kill(victim, no_restart=True)
            await asyncio.sleep(0.5)  # the proxy learns of the death from the controller
            killed.set()

        async with httpx.AsyncClient(base_url=cluster, timeout=60) as client:
            await asyncio.gather(kill(), *(client_loop(client) for _ in range(4)))
        return before, after

    before, after = asyncio.run(burst())
    assert before and len(after) == 40  # the burst was under way when the replica was killed
    assert all(s == 200 for s in after), after  # every request sent after the kill succeeded

    # wait for the replacement itself: until the controller has seen the death, the states it
    # reports may still count the killed replica as running
    def replaced() -> bool:
        return bool(replica_actors() - original) and replica_states().get("RUNNING", 0) == 2

    deadline = time.monotonic() + 120
    while not replaced() and time.monotonic() < deadline:
        time.sleep(1)
    assert replica_actors() - original  # a new replica took the killed one's place
    assert replica_states().get("RUNNING", 0) == 2  # the count comes back


def test_an_overloaded_deployment_answers_503_instead_of_queueing_without_bound(cluster: str) -> None:
    """One replica taking 2 requests at once, and 2 more queued at the proxy: of 24 heavy requests
    sent together, those past the bound are refused at once with a 503, and the rest are served."""
    from app.ray_serve import build

    # no CPU asked: the cluster's 2 are the namegen replicas'
    tight = {"replicas": "1", "cpus": "0", "max_ongoing_requests": "2", "max_queued_requests": "2"}
    serve.run(build(tight), name="tight", route_prefix="/tight")

    async def burst() -> list[tuple[int, float]]:
        async with httpx.AsyncClient(base_url=cluster, timeout=120) as client:

            async def one(seed: int) -> tuple[int, float]:
                t0 = time.monotonic()
                body = {"n": 1000, "unique": False, "seed": seed, "min_length": 16, "max_length": 16}
                r = await client.post("/tight/generate", json=body)
                return r.status_code, time.monotonic() - t0

            return list(await asyncio.gather(*(one(i) for i in range(24))))

    try:
        results = asyncio.run(burst())
    finally:
        serve.delete("tight")
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 12 and statuses.count(200) >= 2, statuses
    slowest_served = max(t for s, t in results if s == 200)
    assert max(t for s, t in results if s == 503) < slowest_served  # refused, not queued first


def test_a_folder_that_fails_to_load_fails_the_deployment_naming_the_file(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ray_serve import build

    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    write_manifest(tmp_path, {"broken.pt": sha256_hex(b"not a checkpoint")})  # listed: its bytes are read
    monkeypatch.setenv("NAMEGEN_MODELS_DIR", str(tmp_path))  # passed on to the replicas
    # no CPU asked: the cluster's 2 are the namegen replicas', and a replica waiting for a CPU
    # would wait for ever instead of failing
    with pytest.raises(RuntimeError, match="Deploying application broken failed"):
        serve.run(build({"replicas": "1", "cpus": "0"}), name="broken", route_prefix="/broken")
    status: Any = serve.status().applications["broken"]
    assert status.status == "DEPLOY_FAILED"
    message = status.deployments["namegen"].message  # what `serve status` shows for the deployment
    assert "broken.pt" in message and "not a zip archive" in message, message[-2000:]
    serve.delete("broken")

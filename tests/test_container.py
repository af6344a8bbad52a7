"""The service image, built and run in a real container runtime (podman; Docker is not available
on these machines). Skipped where podman or the base image is missing; CI provides both
(.ci/run runs deploy/container/offline-base-image first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.support import REPO
from tests.support.server import free_port

BASE = os.environ.get("NAMEGEN_BASE_IMAGE", "localhost/namegen-base:bookworm")
RUNTIME = ["--runtime", "/usr/sbin/runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
pytestmark = pytest.mark.container


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=check)


def wheels_dir() -> str:
    cmd = [sys.executable, "-m", "pip", "config", "get", "global.find-links"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if podman("image", "exists", BASE, check=False).returncode != 0:
        pytest.skip(f"base image {BASE} is missing (run deploy/container/offline-base-image)")
    tag = "localhost/namegen:test"
    args = ["build", *RUNTIME, "--format", "docker", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}"]
    wheels = wheels_dir()
    if wheels:
        args += ["-v", f"{wheels}:/wheels:ro", "--build-arg", "TORCH_INDEX_URL=", "--build-arg",
                 "PIP_FIND_LINKS=/wheels"]  # fmt: skip
    build = podman(*args, "-t", tag, str(REPO), timeout=1500, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tag


@contextmanager
def started(image: str, *flags: str, inside: int = 8000) -> Iterator[tuple[str, str]]:
    """The image running (podman run -d with these flags, serving on port `inside`) until /readyz
    answers; removed after."""
    name = f"namegen-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman("run", "-d", "--name", name, *RUNTIME, *flags, "-p", f"127.0.0.1:{port}:{inside}", image)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            running = podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
            if running != "true" or time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                why = "exited" if running != "true" else "was not ready in 90 s"
                pytest.fail(f"container {why}:\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")
            time.sleep(0.5)
        yield name, url
    finally:
        podman("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[tuple[str, str]]:
    with started(image) as running:
        yield running


def test_container_serves_models_and_names(container: tuple[str, str]) -> None:
    _, url = container
    models = httpx.get(f"{url}/models").json()
    assert models["count"] == len(list((REPO / "models").glob("*.pt"))) and models["default"] == "names"
    body = {"n": 5, "seed": 7}
    first = httpx.post(f"{url}/generate", json=body).json()
    assert first["count"] == 5 and httpx.get(f"{url}/generate", params=body).json()["names"] == first["names"]


def test_container_runs_as_non_root_and_is_healthy(container: tuple[str, str]) -> None:
    name, _ = container
    uid = podman("exec", name, "python", "-c", "import os; print(os.getuid())").stdout.strip()
    assert uid != "0" and uid.isdigit()
    health = podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr


def test_the_healthcheck_follows_the_port_the_service_listens_on(image: str) -> None:
    with started(image, "-e", "NAMEGEN_PORT=8123", inside=8123) as (name, _):
        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr


def test_image_holds_no_training_code_or_tests(image: str) -> None:
    probe = "import importlib.util as u; print(u.find_spec('training'), u.find_spec('pytest'))"
    out = podman("run", "--rm", *RUNTIME, image, "python", "-c", probe).stdout.strip()
    assert out == "None None"
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    print(f"\nimage {image}: {size / 1e6:.0f} MB")


def manifest_flags() -> list[str]:
    """podman flags for what deploy/kubernetes/deployment.yaml promises: its uid, a read-only root
    filesystem, no capabilities, no privilege escalation, a tmpfs where it mounts an emptyDir, and
    its ConfigMap's settings."""
    import yaml

    base = REPO / "deploy" / "kubernetes"
    dep = yaml.safe_load((base / "deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    uid = pod["securityContext"]["runAsUser"]
    flags = ["--user", f"{uid}:{pod['securityContext']['runAsGroup']}"]
    if c["securityContext"]["readOnlyRootFilesystem"]:
        flags.append("--read-only")
    if c["securityContext"]["capabilities"]["drop"] == ["ALL"]:
        flags += ["--cap-drop", "ALL"]
    if not c["securityContext"]["allowPrivilegeEscalation"]:
        flags += ["--security-opt", "no-new-privileges"]
    empty = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
    for mount in c["volumeMounts"]:
        if mount["name"] in empty:
            # a Kubernetes quantity (64Mi) in tmpfs's own units (64m)
            size = empty[mount["name"]].get("sizeLimit", "64Mi").replace("Mi", "m").replace("Gi", "g")
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,size={size}"]
    for key, value in yaml.safe_load((base / "configmap.yaml").read_text())["data"].items():
        flags += ["-e", f"{key}={value}"]
    return flags


def test_the_image_serves_as_the_kubernetes_manifest_runs_it(image: str) -> None:
    flags = manifest_flags()
    assert "--read-only" in flags and "ALL" in flags
    with started(image, *flags) as (name, url):
        assert httpx.get(f"{url}/models").json()["count"] == len(list((REPO / "models").glob("*.pt")))
        body = {"n": 5, "seed": 7}
        names = httpx.post(f"{url}/generate", json=body).json()["names"]
        assert names == httpx.get(f"{url}/generate", params=body).json()["names"]
        assert httpx.get(f"{url}/").status_code == 200  # the playground, from the read-only image
        probe = (
            "import os; open('/tmp/x', 'w').write('ok'); "
            "print(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])"
        )
        out = podman("exec", name, "python", "-c", probe).stdout.split()
        assert out == ["10001", "0000000000000000"]  # the manifest's uid, no capabilities, /tmp writable
        denied = podman("exec", name, "python", "-c", "open('/app/x', 'w')", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        logs = podman("logs", name, check=False)
        assert '"level": "info"' in logs.stderr + logs.stdout  # NAMEGEN_LOG_FORMAT=json from the ConfigMap

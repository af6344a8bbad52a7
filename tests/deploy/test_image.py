"""What the Dockerfile builds from, checked without building: a base image pinned by digest, and
every dependency from a lock file with hashes that covers pyproject.toml's dependencies.
tests/test_container.py builds the image from them with podman."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import REPO

LOCK = REPO / "requirements" / "image.lock"


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's `name==version [; marker] --hash=...` entries."""
    text = re.sub(r"\s*\\\n\s*", " ", LOCK.read_text())  # one line per entry
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *hashes = line.split(" --hash=")
        req = Requirement(requirement)
        (pin,) = req.specifier
        assert pin.operator == "==", f"not pinned: {line}"
        out[canonicalize_name(req.name)] = (pin.version, [h.strip() for h in hashes])
    return out


def test_the_base_image_is_pinned_by_digest() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert base and re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", base.group(1)), base


def test_every_dependency_is_locked_with_its_hashes() -> None:
    lock = locked()
    assert all(hashes and all(h.startswith("sha256:") for h in hashes) for _, hashes in lock.values())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dep.name)
        assert name in lock, f"{dep.name} is not in {LOCK.name}"
        assert dep.specifier.contains(lock[name][0].split("+")[0]), (dep, lock[name][0])


def test_the_image_installs_from_the_lock_and_nothing_else() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements/image.lock" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile
    assert "NAMEGEN_PORT" in dockerfile.split("HEALTHCHECK", 1)[1]  # the probe follows the port

"""
Known vulnerabilities in the service's installed dependencies, from PyPI's vulnerability data.

    .venv/bin/python .ci/audit.py           # table of every dependency; exit 1 on a known vulnerability

pip-audit reads the same data from PyPI's per-release JSON (/pypi/NAME/VERSION/json), which this
project's machines cannot reach (it answers 404 for every release; OSV is not reachable at all), so
pip-audit reports every package as "not found on PyPI". This script first asks for that per-release
JSON, as pip-audit does; where it is missing it falls back to the project JSON (/pypi/NAME/json),
whose vulnerabilities are those of the latest release, so they count only when the installed
release is the latest. Anything else is reported as not audited, never as clean.

Only the service's dependencies (the `namegen` distribution without extras, recursively): what the
image ships. Network errors are reported per package and do not fail the run.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from importlib import metadata

from packaging.requirements import Requirement

PYPI = "https://pypi.org/pypi"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def service_dependencies(root: str = "namegen") -> dict[str, str]:
    """name -> installed version, for the dependency closure of `root` without extras."""
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        dist = metadata.distribution(todo.pop())
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra (train, dev), or another platform's or Python's
            name = canonical(req.name)
            if name in found:
                continue
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue  # a marker excluded it here
            todo.append(name)
    return found


def fetch(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data: dict[str, object] = json.load(response)
            return data
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def audit(name: str, installed: str) -> tuple[str, list[dict[str, object]] | None]:
    """(how it was audited, vulnerabilities), or (why not, None)."""
    version = installed.split("+", 1)[0]  # torch 2.13.0+cpu is PyPI's 2.13.0
    release = fetch(f"{PYPI}/{name}/{version}/json")
    if release is not None:
        return "release JSON", list(release.get("vulnerabilities") or [])  # type: ignore[call-overload]
    project = fetch(f"{PYPI}/{name}/json")
    if project is None:
        return "not on PyPI", None
    latest = project["info"]["version"]  # type: ignore[index]
    if latest == version:
        return "project JSON (latest)", list(project.get("vulnerabilities") or [])  # type: ignore[call-overload]
    return f"not audited: latest is {latest}, its release JSON unreachable", None


def main() -> int:
    deps = service_dependencies()
    rows, vulnerable, unaudited = [], 0, 0
    for name, version in sorted(deps.items()):
        try:
            how, vulns = audit(name, version)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            how, vulns = f"not audited: {e}", None
        if vulns is None:
            unaudited += 1
            found = "-"
        elif vulns:
            vulnerable += 1
            found = ", ".join(f"{v.get('id')} (fixed in {', '.join(v.get('fixed_in') or []) or '?'})"  # type: ignore[arg-type]
                              for v in vulns)  # fmt: skip
        else:
            found = "none known"
        rows.append((name, version, how, found))
    width = max(len(r[0]) for r in rows)
    print(f"{'package':<{width}}  {'version':<12}  {'audited from':<52}  vulnerabilities")
    for name, version, how, found in rows:
        print(f"{name:<{width}}  {version:<12}  {how:<52}  {found}")
    audited = len(rows) - unaudited
    print(f"\n{len(rows)} dependencies: {audited} audited, {vulnerable} with known vulnerabilities, "
          f"{unaudited} not audited")  # fmt: skip
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())

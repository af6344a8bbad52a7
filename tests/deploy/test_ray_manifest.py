"""The Ray Serve config and the KubeRay RayService manifest, checked offline. No schema for the
RayService kind itself ships with kubernetes-validate (it is a custom resource), so its parts that
are Kubernetes objects, the head's and the workers' pod templates, are validated strictly as
PodTemplates, and the Serve application it embeds must be deploy/ray/serve.yaml's, which must
name a real builder and only the arguments it takes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support import REPO

RAY = REPO / "deploy" / "ray"
KUBERNETES = "1.32.0"


def rayservice() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((RAY / "rayservice.yaml").read_text())
    return doc


def templates() -> list[dict[str, Any]]:
    cluster = rayservice()["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]


def test_pod_templates_validate_strictly_and_are_hardened() -> None:
    import kubernetes_validate

    dockerfile = (REPO / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    for i, template in enumerate(templates()):
        resource = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"t{i}"},
            "template": template,
        }
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)
        pod = template["spec"]
        assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= set(c["resources"])


def test_the_embedded_serve_config_is_deploy_ray_serve_yaml() -> None:
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    config = yaml.safe_load((RAY / "serve.yaml").read_text())
    assert embedded["applications"] == config["applications"]
    assert rayservice()["apiVersion"] == "ray.io/v1" and rayservice()["kind"] == "RayService"


def test_the_serve_config_names_a_real_builder_and_its_arguments() -> None:
    app = yaml.safe_load((RAY / "serve.yaml").read_text())["applications"][0]
    module_name, attr = app["import_path"].split(":")
    text = (REPO / (module_name.replace(".", "/") + ".py")).read_text()  # read: ray may be absent
    assert f"def {attr}(args: dict[str, str])" in text
    for key in app["args"]:
        assert f'args.get("{key}"' in text, key  # an argument build() reads


def test_ray_version_matches_the_installed_extra() -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    assert rayservice()["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__

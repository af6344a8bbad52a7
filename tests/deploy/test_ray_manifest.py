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
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])  # Ray's session
        assert pod["automountServiceAccountToken"] is False


def test_the_operator_can_reach_the_dashboard() -> None:
    """KubeRay's operator deploys the Serve application through the head's dashboard over the pod
    network: a dashboard bound to 127.0.0.1 would never get it."""
    params = rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert params["dashboard-host"] == "0.0.0.0"


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


def networkpolicy() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((RAY / "networkpolicy.yaml").read_text())
    return doc


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector of matchLabels only (what the policy uses); {} selects everything."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admits(
    policy: dict[str, Any], target: dict[str, str], source: dict[str, str], namespace: str, port: int
) -> bool:
    """Whether the NetworkPolicy lets a pod labelled `source`, in `namespace`, reach port `port` of
    a pod labelled `target` in the policy's namespace: Kubernetes' rules for ingress, for the forms
    of peer the manifests use (a podSelector alone: this namespace; with a namespaceSelector: the
    namespaces it selects by their kubernetes.io/metadata.name label)."""
    spec = policy["spec"]
    if not matches(spec["podSelector"], target):
        return True  # a pod no policy selects accepts everything
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    for rule in spec.get("ingress", []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        for peer in rule.get("from", []):
            if "namespaceSelector" in peer:
                if not matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
                    continue
            elif namespace != policy["metadata"]["namespace"]:
                continue
            if matches(peer.get("podSelector", {}), source):
                return True
    return False


def test_a_networkpolicy_selects_every_ray_pod_and_validates() -> None:
    import kubernetes_validate

    policy = networkpolicy()
    kubernetes_validate.validate(policy, KUBERNETES, strict=True)
    assert policy["metadata"]["namespace"] == rayservice()["metadata"]["namespace"]
    for template in templates():
        assert matches(policy["spec"]["podSelector"], template["metadata"]["labels"])


def test_only_ray_pods_reach_ray_and_only_the_namespace_reaches_serve() -> None:
    policy, ns = networkpolicy(), rayservice()["metadata"]["namespace"]
    head, worker = (t["metadata"]["labels"] for t in templates()[:2])
    client = {"app.kubernetes.io/name": "web"}  # any other pod of the namespace
    operator = {"app.kubernetes.io/name": "kuberay-operator"}
    gcs, dashboard, agent, serve, raylet = 6379, 8265, 52365, 8000, 43127
    for port in (gcs, dashboard, raylet, 10001):
        assert admits(policy, head, worker, ns, port) and admits(policy, worker, head, ns, port)
        assert not admits(policy, head, client, ns, port), port  # the namespace's other pods
        assert not admits(policy, head, client, "other", port), port  # any other namespace
        assert not admits(policy, head, head, "other", port), port  # Ray labels elsewhere: not ours
    assert admits(policy, head, client, ns, serve) and admits(policy, worker, client, ns, serve)
    assert not admits(policy, head, client, "other", serve)
    # the KubeRay operator manages the Serve app through the dashboard and its agent, nothing else
    assert admits(policy, head, operator, "kuberay-system", dashboard)
    assert admits(policy, head, operator, "kuberay-system", agent)
    assert not admits(policy, head, operator, "kuberay-system", gcs)
    # a pod that calls itself the operator in any other namespace reaches no job submission
    assert not admits(policy, head, operator, "tenant", dashboard)
    assert not admits(policy, head, operator, "tenant", agent)


def test_ray_pods_reach_only_each_other_and_the_clusters_dns() -> None:
    peers = [(peer, rule.get("ports")) for rule in networkpolicy()["spec"]["egress"] for peer in rule["to"]]
    for peer, ports in peers:
        if peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "namegen-ray"}:
            assert "namespaceSelector" not in peer
        else:
            assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
            assert {p["port"] for p in ports} == {53}


def test_the_serve_config_bounds_the_queue_and_the_proxys_wait() -> None:
    config = yaml.safe_load((RAY / "serve.yaml").read_text())
    args = config["applications"][0]["args"]
    assert 0 < int(args["max_queued_requests"]) <= 1024
    assert 0 < float(config["http_options"]["request_timeout_s"]) <= 60
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    assert embedded["http_options"]["request_timeout_s"] == config["http_options"]["request_timeout_s"]

"""The deploy files are checked, offline: ``deploy/k8s/`` against the Kubernetes schemas that
``kubernetes-validate`` ships, ``deploy/compose.yaml`` against the Compose specification's JSON
schema that ``check-jsonschema`` vendors; and the wiring this project relies on (probes on the
right routes, memory bounded, a disruption budget per service, the gateway autoscaled)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.30.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


DOCS = _documents()
DEPLOYMENTS = {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == "Deployment"}


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS])
def test_k8s_manifest_matches_the_kubernetes_schema(name: str, doc: dict[str, Any]):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_schema_violation_is_caught():
    broken = json.loads(json.dumps(DEPLOYMENTS["gateway"]))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def _container(name: str) -> dict[str, Any]:
    return DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_probes_follow_readiness_and_liveness(name: str):
    container = _container(name)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_memory_is_requested_and_bounded(name: str):
    res = _container(name)["resources"]
    request, limit = _mebibytes(res["requests"]["memory"]), _mebibytes(res["limits"]["memory"])
    assert 0 < request <= limit <= 2048
    assert res["requests"]["cpu"]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_service_has_a_disruption_budget(name: str):
    budgets = [d for _, d in DOCS if d["kind"] == "PodDisruptionBudget"]
    labels = DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]
    matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert len(matching) == 1
    spec = matching[0]["spec"]
    if DEPLOYMENTS[name]["spec"]["replicas"] == 1:
        # minAvailable: 1 on a single replica would block every node drain.
        assert spec.get("maxUnavailable") == 1


def test_gateway_is_autoscaled():
    hpas = [d for _, d in DOCS if d["kind"] == "HorizontalPodAutoscaler"]
    targets = {h["spec"]["scaleTargetRef"]["name"]: h for h in hpas}
    assert set(targets) == {"gateway"}
    assert targets["gateway"]["spec"]["minReplicas"] >= 2


def _compose_schema() -> dict[str, Any]:
    # The package's data only: importing check_jsonschema itself pulls in its CLI.
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations
    vendor = Path(next(iter(spec.submodule_search_locations))) / "builtin_schemas" / "vendor" / "compose-spec.json"
    return dict(json.loads(vendor.read_text()))


def test_compose_file_matches_the_compose_specification():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, _compose_schema())


def test_a_compose_violation_is_caught():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose["services"]["gateway"]["ports"] = {"not": "a list"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(compose, _compose_schema())


def test_compose_services_have_health_checks_on_readiness():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("gateway", "ingest-worker", "control-engine", "alerter", "eval-engine"):
        assert "/readyz" in " ".join(compose["services"][name]["healthcheck"]["test"])

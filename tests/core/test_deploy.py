"""The generated Kubernetes manifests are valid for the Kubernetes versions platform teams run."""

from __future__ import annotations

import importlib

import pytest
import yaml
from kubernetes_validate import validate

from herald_core.generate import kubernetes_workloads
from herald_stack.config import REPO_ROOT


@pytest.mark.parametrize("kubernetes", ["1.30", "1.32"])
def test_workloads_validate_strictly(kubernetes: str) -> None:
    for document in kubernetes_workloads():
        validate(document, kubernetes, strict=True)


def test_the_committed_manifest_is_the_generated_one() -> None:
    committed = list(yaml.safe_load_all((REPO_ROOT / "deploy" / "k8s" / "herald.yaml").read_text()))
    assert committed == kubernetes_workloads()


def test_every_service_has_probes_and_only_the_guard_holds_the_signing_key() -> None:
    deployments = {d["metadata"]["name"]: d for d in kubernetes_workloads() if d["kind"] == "Deployment"}
    assert set(deployments) == {
        f"herald-{s}" for s in ("ingest", "retrieval", "planner", "guard", "review", "executor")
    }
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secrets = {
        name: [v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v]
        for name, d in deployments.items()
    }
    assert secrets["herald-guard"] == ["herald-guard-keys"]
    assert secrets["herald-ingest"] == ["herald-ingest-tokens"]  # the tenants' ingest tokens, nothing else
    # optional: a cluster without it runs ingest with every tenant open (its ingress authenticates)
    [tokens] = [v for v in deployments["herald-ingest"]["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert tokens["secret"]["optional"] is True
    holders = ("herald-guard", "herald-executor", "herald-ingest")
    assert all(not s for name, s in secrets.items() if name not in holders)


def test_each_service_listens_where_its_probes_and_callers_look() -> None:
    """The port and host a Deployment sets are settings its service reads (else it would listen on its default,
    on loopback), and the planner reaches the executor's read API at the executor Service's port."""
    documents = kubernetes_workloads()
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        service = deployment["metadata"]["name"].removeprefix("herald-")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        settings = importlib.import_module(f"herald_{service}.settings").Settings()
        prefix = f"HERALD_{service.upper()}_"
        port = str(container["ports"][0]["containerPort"])
        (port_name,) = [name for name, value in env.items() if name.endswith("_PORT") and value == port]
        host_name = port_name.removesuffix("_PORT") + "_HOST"
        assert env[host_name] == "0.0.0.0"
        for name in (port_name, host_name):
            assert name.removeprefix(prefix).lower() in type(settings).model_fields, f"{service} ignores {name}"
    executor = next(d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == "herald-executor")
    assert config["HERALD_PLANNER_EXECUTOR_URL"] == f"http://herald-executor:{executor['spec']['ports'][0]['port']}"

"""The generated Kubernetes manifests are valid for the Kubernetes versions platform teams run."""

from __future__ import annotations

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
    assert all(not s for name, s in secrets.items() if name not in ("herald-guard", "herald-executor"))

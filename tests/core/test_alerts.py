"""The alert rules name metrics the code defines, so an alert cannot silently watch nothing."""

from __future__ import annotations

import re

import yaml
from prometheus_client import REGISTRY

import herald_core.bus  # noqa: F401 - registers the consumers' metrics (and herald_core.observability's)
from herald_stack.config import REPO_ROOT


def _defined() -> set[str]:
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        if metric.type == "counter":  # a counter's samples end in _total, and a labelled one has none yet
            names.add(f"{metric.name}_total")
        names |= {sample.name for sample in metric.samples}
    return names


def test_every_alert_watches_a_metric_herald_exports() -> None:
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "alerts.yaml").read_text())
    alerts = [rule for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"HeraldConsumerWedged", "HeraldConsumerGaveUp"}
    defined = _defined()
    for alert in alerts:
        used = set(re.findall(r"herald_[a-z_]+", alert["expr"]))
        assert used, alert["alert"]
        assert used <= defined, (alert["alert"], used - defined)

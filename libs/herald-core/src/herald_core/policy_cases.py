"""Unit tests for a policy, written in YAML: what the guard must decide for actions like these.

    tenant:                       # optional: the tenant's configuration, over a sample one
      name: Acme Relay
    cases:
      - name: a VIP goes to review
        action: {contact: {vip: true}}        # over a sample first-touch email
        expect: escalate                      # approve | block | escalate
        rules: [escalation.vip]               # these rules must have fired (optional)
      - name: an invented discount is blocked
        unsupported_claims: [{kind: percentage, text: 90% off}]   # what the grounding API would say
        expect: block
      - name: an opted-out contact gets nothing
        suppressed: unsubscribe               # a recorded opt-out, and its reason
        expect: block
        rules: [consent.opt_out]
      - name: at review, escalation rules are done with
        stage: review
        action: {contact: {vip: true}}
        expect: approve

`herald policy test policy.yaml cases.yaml` runs them; so does the guard's own test suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from herald_core.contracts import ActionProposed
from herald_core.policy import Grounding, Outcome, Policy, UnsupportedClaim, Verdict, evaluate
from herald_core.tenants import TenantConfig


class PolicyCase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    action: dict[str, Any] = Field(default_factory=dict, description="Fields over the sample action.")
    suppressed: str | None = Field(default=None, description="The contact has opted out, for this reason.")
    stage: Literal["proposal", "review"] = "proposal"
    first_send: bool = Field(default=False, description="The action is its campaign's first send (none approved yet).")
    at: datetime | None = Field(default=None, description="When the decision is made (UTC); default: now.")
    unsupported_claims: tuple[dict[str, str], ...] = Field(
        default=(), description="What the grounding API says the draft claims without evidence ({kind, text})."
    )
    expect: Outcome
    rules: tuple[str, ...] = Field(default=(), description="Rules that must have fired (blocked or escalated).")


class PolicyCases(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant: dict[str, Any] = Field(default_factory=dict)
    cases: tuple[PolicyCase, ...] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    case: PolicyCase
    verdict: Verdict | None
    failure: str | None  # None when the case passed

    @property
    def passed(self) -> bool:
        return self.failure is None


SAMPLE_ACTION: dict[str, Any] = {
    "action_id": "01JCASE000000000000000000",
    "tenant": "",  # the policy's tenant
    "workflow_id": "wf-case",
    "tool": "send_email",
    "input": {
        "to": "jordan.reyes@northwind.example",
        "to_name": "Jordan Reyes",
        "subject": "Jordan, how logistics teams use Acme Relay",
        "body_text": "Hi Jordan,\n\nNorthwind Freight cut carrier-exception handling time by 62% in the first "
        "quarter.\n\nWould a 20-minute call next week be useful?\n\nBest,\nMaya",
    },
    "contact": {
        "contact_id": "5100001",
        "email": "jordan.reyes@northwind.example",
        "first_name": "Jordan",
        "last_name": "Reyes",
        "company": "Northwind Freight",
        "job_title": "Head of Operations",
        "industry": "logistics",
        "lifecycle_stage": "lead",
        "timezone": "America/Chicago",
        "vip": False,
        "deal_value_minor": 0,
    },
    "evidence": [
        {
            "chunk_id": "customers/logistics-northwind#000",
            "doc_id": "customers/logistics-northwind",
            "title": "Customer story: Northwind Freight",
            "score": 0.9,
            "quote": "Northwind Freight cut carrier-exception handling time by 62% in the first quarter.",
        }
    ],
    "confidence": 0.8,
    "rationale": "new lead in logistics; first touch from retrieved passages",
}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) else value
        )
    return merged


def load_cases(source: str) -> PolicyCases:
    return PolicyCases.model_validate(yaml.safe_load(source))


def run_cases(policy: Policy, cases: PolicyCases) -> list[CaseResult]:
    tenant = TenantConfig.model_validate(
        _merge(
            {
                "tenant_id": policy.tenant,
                "name": policy.tenant,
                "sender": {"name": "Sender", "address": "sender@example.com"},
                "unsubscribe_url": "https://example.com/unsubscribe",
            },
            cases.tenant,
        )
    )
    results = []
    for case in cases.cases:
        try:
            action = ActionProposed.model_validate(_merge({**SAMPLE_ACTION, "tenant": policy.tenant}, case.action))
        except ValueError as exc:
            results.append(CaseResult(case, None, f"the case's action is not valid: {exc}"))
            continue
        grounding = Grounding(
            unsupported=tuple(
                UnsupportedClaim(c.get("kind", "number"), c.get("text", ""), "no evidence passage supports it")
                for c in case.unsupported_claims
            ),
            claims=len(case.unsupported_claims),
        )
        verdict = evaluate(
            policy,
            action,
            tenant,
            stage=case.stage,
            suppression_reason=case.suppressed,
            grounding=grounding,
            now=case.at,
            campaign_first_send=case.first_send,
        )
        fired = {h.rule for h in verdict.rules if h.outcome != "pass"}
        failure = None
        if verdict.outcome != case.expect:
            failure = f"expected {case.expect}, got {verdict.outcome} ({verdict.rule}: {verdict.reason})"
        elif missing := [r for r in case.rules if r not in fired]:
            failure = f"rules that did not fire: {', '.join(missing)} (fired: {', '.join(sorted(fired)) or 'none'})"
        results.append(CaseResult(case, verdict, failure))
    return results

"""The guard's hard rules, as pure functions: no I/O, no LLM, fast to test.

`evaluate` looks at one proposed action with the facts the adapters gathered (consent state,
the tenant's configuration) and returns every rule's result. Counters (the hourly and
per-contact caps) are not here: they must be exact across replicas, so they are reserved
atomically in Postgres (`adapters.store`) after these rules pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from herald_core.contracts import ActionProposed, RuleHit
from herald_core.signing import canonical_bytes
from herald_core.tenants import TenantConfig

Outcome = Literal["approve", "block", "escalate"]


@dataclass(frozen=True)
class Facts:
    tenant: TenantConfig
    suppression_reason: str | None
    stage: Literal["proposal", "review"]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rule: str | None
    reason: str
    rules: tuple[RuleHit, ...]


def evaluate(action: ActionProposed, facts: Facts) -> Verdict:
    hits: list[RuleHit] = []
    if facts.suppression_reason:
        hits.append(
            RuleHit(
                rule="consent.opt_out",
                outcome="block",
                detail=f"contact {action.contact.contact_id} is suppressed: {facts.suppression_reason}",
            )
        )
    else:
        hits.append(RuleHit(rule="consent.opt_out", outcome="pass", detail="no opt-out recorded"))

    contact_email = (action.contact.email or "").lower()
    if action.input.to.lower() != contact_email:
        hits.append(
            RuleHit(
                rule="content.recipient_is_contact",
                outcome="block",
                detail=f"recipient {action.input.to} is not the contact's address {contact_email or '-'}",
            )
        )
    else:
        hits.append(RuleHit(rule="content.recipient_is_contact", outcome="pass", detail="recipient is the contact"))

    if action.tenant != facts.tenant.tenant_id:
        hits.append(
            RuleHit(
                rule="tenant.matches",
                outcome="block",
                detail=f"action is for {action.tenant}, message is from {facts.tenant.tenant_id}",
            )
        )

    if facts.stage == "proposal":
        escalation = facts.tenant.escalation
        if escalation.vip and action.contact.vip:
            hits.append(RuleHit(rule="escalation.vip", outcome="escalate", detail="contact is marked VIP"))
        threshold = escalation.deal_value_minor_at_least
        if threshold is not None and action.contact.deal_value_minor >= threshold:
            hits.append(
                RuleHit(
                    rule="escalation.deal_value",
                    outcome="escalate",
                    detail=f"open deal {action.contact.deal_value_minor} ≥ {threshold} (minor units)",
                )
            )

    blocks = [h for h in hits if h.outcome == "block"]
    if blocks:
        return Verdict("block", blocks[0].rule, blocks[0].detail, tuple(hits))
    escalations = [h for h in hits if h.outcome == "escalate"]
    if escalations:
        return Verdict("escalate", escalations[0].rule, "; ".join(h.detail for h in escalations), tuple(hits))
    return Verdict("approve", None, "all rules passed", tuple(hits))


def cap_hit(counter: str, cap: int) -> RuleHit:
    names = {"tenant_hour": "limits.tenant_emails_per_hour", "contact_day": "limits.contact_emails_per_day"}
    return RuleHit(rule=names[counter], outcome="block", detail=f"cap of {cap} reached for this window")


def action_hash(action: ActionProposed) -> str:
    """Fingerprint of exactly what was decided: a review decision must be about these bytes."""
    return hashlib.sha256(canonical_bytes(action.model_dump(mode="json"))).hexdigest()

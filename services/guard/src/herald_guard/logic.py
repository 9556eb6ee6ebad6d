"""The guard's own pure helpers. The rules themselves are the tenant's policy, evaluated by
`herald_core.policy.evaluate` (the same code `herald policy test` and backtests run). Counters
(the hourly and per-contact caps) are not rules: they must be exact across replicas, so they are
reserved atomically in Postgres (`adapters.store`) after the rules pass.
"""

from __future__ import annotations

import hashlib

from herald_core.contracts import ActionProposed, RuleHit
from herald_core.signing import canonical_bytes


def cap_hit(counter: str, cap: int) -> RuleHit:
    names = {"tenant_hour": "limits.tenant_emails_per_hour", "contact_day": "limits.contact_emails_per_day"}
    return RuleHit(rule=names[counter], outcome="block", detail=f"cap of {cap} reached for this window")


def action_hash(action: ActionProposed) -> str:
    """Fingerprint of exactly what was decided: a review decision must be about these bytes."""
    return hashlib.sha256(canonical_bytes(action.model_dump(mode="json"))).hexdigest()

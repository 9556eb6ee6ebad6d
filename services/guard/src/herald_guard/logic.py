"""The guard's own pure helpers. The rules themselves are the tenant's policy, evaluated by
`herald_core.policy.evaluate` (the same code `herald policy test` and backtests run). Caps
(the tenant configuration's and the policy's `limits`) are not rules: they must be exact across
replicas, so they are reserved in Postgres (`adapters.store`) after the rules pass.
"""

from __future__ import annotations

import hashlib

from herald_core.contracts import ActionProposed, RuleHit
from herald_core.signing import canonical_bytes


def cap_hit(rule: str, description: str) -> RuleHit:
    return RuleHit(rule=rule, outcome="block", detail=f"cap reached: {description}")


def action_hash(action: ActionProposed) -> str:
    """Fingerprint of exactly what was decided: a review decision must be about these bytes."""
    return hashlib.sha256(canonical_bytes(action.model_dump(mode="json"))).hexdigest()

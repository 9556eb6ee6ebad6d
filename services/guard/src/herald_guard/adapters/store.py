"""The guard's Postgres: decisions recorded once per action and stage, caps reserved atomically.

Recording the decision and reserving the counters happen in one database transaction, and the
decision row is the idempotency key: a redelivered proposal finds its decision and re-emits it
without counting the email twice. Several guard replicas racing on one tenant's hourly cap stay
exact because the increment is a single conditional upsert (`… DO UPDATE … WHERE count < cap`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from herald_core.contracts import Approval, RuleHit
from herald_guard.logic import cap_hit


@dataclass(frozen=True)
class Decision:
    outcome: str
    rule: str | None
    reason: str
    rules: tuple[RuleHit, ...]
    approval: Approval | None
    review_id: str | None
    action_hash: str
    policy_version: str | None = None
    release_at: datetime | None = None


@dataclass(frozen=True)
class Deferral:
    """What the releaser needs to decide a held action again."""

    action_id: str
    stage: str
    tenant: str
    release_at: datetime
    approved_by: str
    action_json: str
    envelope_json: str


@dataclass(frozen=True)
class CapRequest:
    counter: str  # tenant_hour | contact_day
    key: str
    window_start: datetime
    cap: int


def windows(now: datetime) -> tuple[datetime, datetime]:
    hour = now.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    return hour, day


class GuardStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def find(self, action_id: str, stage: str) -> Decision | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM guard.decisions WHERE action_id = $1 AND stage = $2", action_id, stage
        )
        return None if row is None else _decision(row)

    async def record(
        self,
        *,
        action_id: str,
        stage: str,
        tenant: str,
        contact_id: str,
        decision: Decision,
        caps: list[CapRequest],
        approve: Callable[[], Approval | None],
        deferral: Deferral | None = None,
    ) -> Decision:
        """Record `decision`; an approval first reserves every cap, and turns into a block on the first cap hit.

        `approve()` signs only once the caps are reserved. Returns the decision that stands: an earlier one
        if this action was already decided at this stage (its reservations are then rolled back with the rest).
        """
        async with self.pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                final = decision
                if decision.outcome == "approve":
                    hit = await _reserve(conn, tenant, caps)
                    if hit is not None:
                        blocked = cap_hit(hit.counter, hit.cap)
                        final = replace(
                            decision,
                            outcome="block",
                            rule=blocked.rule,
                            reason=blocked.detail,
                            rules=(*decision.rules, blocked),
                        )
                    else:
                        final = replace(decision, approval=approve())
                recorded = await conn.fetchval(
                    "INSERT INTO guard.decisions(action_id, stage, tenant, contact_id, outcome, rule, reason, rules, "
                    "action_hash, approval, review_id, policy_version, release_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING "
                    "RETURNING true",
                    action_id,
                    stage,
                    tenant,
                    contact_id,
                    final.outcome,
                    final.rule,
                    final.reason,
                    json.dumps([h.model_dump(mode="json") for h in final.rules]),
                    final.action_hash,
                    final.approval.model_dump_json() if final.approval else None,
                    final.review_id,
                    final.policy_version,
                    final.release_at,
                )
                if recorded and final.outcome == "defer" and deferral is not None:
                    await conn.execute(
                        "INSERT INTO guard.deferred(action_id, stage, tenant, release_at, approved_by, action, "
                        "envelope) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) ON CONFLICT DO NOTHING",
                        deferral.action_id,
                        deferral.stage,
                        deferral.tenant,
                        deferral.release_at,
                        deferral.approved_by,
                        deferral.action_json,
                        deferral.envelope_json,
                    )
            except BaseException:
                await transaction.rollback()
                raise
            if recorded:
                await transaction.commit()
                return final
            await transaction.rollback()
            row = await conn.fetchrow(
                "SELECT * FROM guard.decisions WHERE action_id = $1 AND stage = $2", action_id, stage
            )
            return _decision(row)


class DeferredActions:
    """Held actions, leased to one releaser at a time (a replica that dies mid-release loses its lease)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def lease_due(self, now: datetime, limit: int = 50, lease_seconds: float = 30.0) -> list[Deferral]:
        rows = await self.pool.fetch(
            "UPDATE guard.deferred SET leased_until = now() + make_interval(secs => $3) WHERE (action_id, stage) IN "
            "(SELECT action_id, stage FROM guard.deferred WHERE release_at <= $1 "
            "AND (leased_until IS NULL OR leased_until < now()) ORDER BY release_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
            "RETURNING action_id, stage, tenant, release_at, approved_by, action::text, envelope::text",
            now,
            limit,
            lease_seconds,
        )
        return [Deferral(*r) for r in rows]

    async def reschedule(self, action_id: str, stage: str, release_at: datetime) -> None:
        await self.pool.execute(
            "UPDATE guard.deferred SET release_at = $3, leased_until = NULL WHERE action_id = $1 AND stage = $2",
            action_id,
            stage,
            release_at,
        )

    async def remove(self, action_id: str, stage: str) -> None:
        await self.pool.execute("DELETE FROM guard.deferred WHERE action_id = $1 AND stage = $2", action_id, stage)


async def _reserve(conn: asyncpg.Connection, tenant: str, caps: list[CapRequest]) -> CapRequest | None:
    """Increment every counter below its cap, or none of them; return the cap that was full."""
    savepoint = conn.transaction()
    await savepoint.start()
    for cap in caps:
        if cap.cap <= 0:
            await savepoint.rollback()
            return cap
        ok = await conn.fetchval(
            "INSERT INTO guard.send_counters(tenant, counter, window_start, count) VALUES ($1, $2, $3, 1) "
            "ON CONFLICT (tenant, counter, window_start) DO UPDATE SET count = send_counters.count + 1 "
            "WHERE send_counters.count < $4 RETURNING true",
            tenant,
            cap.key,
            cap.window_start,
            cap.cap,
        )
        if not ok:
            await savepoint.rollback()
            return cap
    await savepoint.commit()
    return None


def _decision(row: asyncpg.Record) -> Decision:
    return Decision(
        outcome=row["outcome"],
        rule=row["rule"],
        reason=row["reason"] or "",
        rules=tuple(RuleHit.model_validate(h) for h in json.loads(row["rules"])),
        approval=Approval.model_validate_json(row["approval"]) if row["approval"] else None,
        review_id=row["review_id"],
        action_hash=row["action_hash"],
        policy_version=row["policy_version"],
        release_at=row["release_at"],
    )

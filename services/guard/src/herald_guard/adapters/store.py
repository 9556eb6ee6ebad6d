"""The guard's Postgres: decisions recorded once per action and stage, caps reserved exactly.

Recording the decision and reserving the caps happen in one database transaction, and the
decision row is the idempotency key: a redelivered proposal finds its decision and re-emits it
without counting the email twice. A cap is a sliding window: its count is the reservations made
inside the last `per`; several guard replicas racing on one counter stay exact because each
reservation first takes a transaction-scoped advisory lock on that counter (all of an action's
counters in one order, so two reservations never wait on each other in a cycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import asyncpg

from herald_core.contracts import Approval, ConsentWithdrawn, RuleHit
from herald_core.policy import Breaker, BreakerReading, Verdict
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
    """One cap an approval counts against: at most `cap` reservations on `counter` in any `per`."""

    rule: str
    counter: str
    per: timedelta
    cap: int
    description: str


class GuardStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_shadow_difference(
        self, action_id: str, stage: str, tenant: str, live: Verdict, shadow: Verdict
    ) -> None:
        await self.pool.execute(
            "INSERT INTO guard.shadow_differences(action_id, stage, tenant, live_version, live_outcome, live_rule, "
            "shadow_version, shadow_outcome, shadow_rule, shadow_reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            action_id,
            stage,
            tenant,
            live.policy_version,
            live.outcome,
            live.rule,
            shadow.policy_version,
            shadow.outcome,
            shadow.rule,
            shadow.reason[:2000],
        )

    async def shadow_differences(self, tenant: str, limit: int = 100) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            "SELECT action_id, stage, live_version, live_outcome, live_rule, shadow_version, shadow_outcome, "
            "shadow_rule, shadow_reason, decided_at FROM guard.shadow_differences WHERE tenant = $1 "
            "ORDER BY decided_at DESC LIMIT $2",
            tenant,
            limit,
        )
        return [{**dict(r), "decided_at": r["decided_at"].isoformat()} for r in rows]

    async def breaker_readings(
        self, tenant: str, breakers: Sequence[Breaker], campaign_id: str | None, now: datetime
    ) -> dict[str, BreakerReading]:
        """Sends (approvals) and delivery problems in each breaker's window, for the tenant or the campaign.
        A problem counts for a campaign when the campaign had approved a send to that contact."""
        readings = {}
        for breaker in breakers:
            campaign = campaign_id if breaker.scope == "campaign" else None
            if breaker.scope == "campaign" and campaign is None:
                continue
            since = now - breaker.window
            row = await self.pool.fetchrow(
                "SELECT (SELECT count(*) FROM guard.decisions WHERE tenant = $1 AND outcome = 'approve' "
                "AND decided_at > $2 AND ($3::text IS NULL OR campaign_id = $3)) AS sends, "
                "(SELECT count(*) FROM guard.delivery_problems p WHERE p.tenant = $1 AND p.occurred_at > $2 "
                "AND p.reason = ANY($4::text[]) AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM guard.decisions d "
                "WHERE d.tenant = p.tenant AND d.contact_id = p.contact_id AND d.campaign_id = $3 "
                "AND d.outcome = 'approve'))) AS problems",
                tenant,
                since,
                campaign,
                list(breaker.reasons),
            )
            readings[breaker.id] = BreakerReading(int(row["sends"]), int(row["problems"]))
        return readings

    async def record_llm_usage(self, message_id: str, tenant: str, day: date, tokens: int) -> int:
        """Count one report (once, whatever the redeliveries); returns the tenant's tokens for that day."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO guard.llm_usage(message_id, tenant, day, tokens) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT DO NOTHING",
                message_id,
                tenant,
                day,
                tokens,
            )
            return await self._llm_tokens(conn, tenant, day)

    async def llm_tokens(self, tenant: str, day: date) -> int:
        async with self.pool.acquire() as conn:
            return await self._llm_tokens(conn, tenant, day)

    @staticmethod
    async def _llm_tokens(conn: asyncpg.Connection, tenant: str, day: date) -> int:
        total = await conn.fetchval(
            "SELECT coalesce(sum(tokens), 0) FROM guard.llm_usage WHERE tenant = $1 AND day = $2", tenant, day
        )
        return int(total)

    async def withdraw(self, action_id: str, tenant: str, reason: str) -> None:
        await self.pool.execute(
            "INSERT INTO guard.withdrawn(action_id, tenant, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            action_id,
            tenant,
            reason,
        )

    async def withdrawal(self, action_id: str) -> str | None:
        """Why the action's workflow withdrew it, if it did."""
        value = await self.pool.fetchval("SELECT reason FROM guard.withdrawn WHERE action_id = $1", action_id)
        return None if value is None else str(value)

    async def campaign_launched(self, tenant: str, campaign_id: str) -> bool:
        """Whether a send of the campaign has been approved (its first send is behind it)."""
        found = await self.pool.fetchval(
            "SELECT true FROM guard.campaigns WHERE tenant = $1 AND campaign_id = $2", tenant, campaign_id
        )
        return bool(found)

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
        now: datetime,
        deferral: Deferral | None = None,
        consent_checked_at: datetime | None = None,
        campaign_id: str | None = None,
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
                    hit = await _reserve(conn, tenant, action_id, caps, now)
                    if hit is not None:
                        blocked = cap_hit(hit.rule, hit.description)
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
                    "action_hash, approval, review_id, policy_version, release_at, consent_checked_at, campaign_id) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING "
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
                    consent_checked_at,
                    campaign_id,
                )
                if recorded and final.outcome == "approve" and campaign_id is not None:
                    await conn.execute(
                        "INSERT INTO guard.campaigns(tenant, campaign_id, first_action_id) VALUES ($1, $2, $3) "
                        "ON CONFLICT DO NOTHING",
                        tenant,
                        campaign_id,
                        action_id,
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


async def _reserve(
    conn: asyncpg.Connection, tenant: str, action_id: str, caps: list[CapRequest], now: datetime
) -> CapRequest | None:
    """Reserve `action_id` on every counter below its cap, or on none of them; return the cap that was full.

    Runs inside the caller's transaction: the counter locks are held until it commits or rolls back. Three
    statements, whatever the number of caps (the locks are held for as short a time as the counting takes)."""
    if not caps:
        return None
    counters = sorted({cap.counter for cap in caps})
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('guard/' || $1 || '/' || c, 0)) "
        "FROM unnest($2::text[]) WITH ORDINALITY AS t(c, n) ORDER BY n",
        tenant,
        counters,
    )
    rows = await conn.fetch(
        "SELECT c.n, (SELECT count(*) FROM guard.limit_reservations r WHERE r.tenant = $1 AND r.counter = c.counter "
        "AND r.reserved_at > c.since AND r.action_id <> $2) AS used "
        "FROM unnest($3::text[], $4::timestamptz[]) WITH ORDINALITY AS c(counter, since, n)",
        tenant,
        action_id,
        [cap.counter for cap in caps],
        [now - cap.per for cap in caps],
    )
    used = {int(row["n"]) - 1: int(row["used"]) for row in rows}
    for index, cap in enumerate(caps):
        if used[index] >= cap.cap:
            return cap
    await conn.execute(
        "INSERT INTO guard.limit_reservations(tenant, counter, action_id, reserved_at) "
        "SELECT $1, c, $2, $3 FROM unnest($4::text[]) AS c ON CONFLICT DO NOTHING",
        tenant,
        action_id,
        now,
        counters,
    )
    return None


async def forget_old_reservations(pool: asyncpg.Pool, now: datetime, older_than: timedelta) -> int:
    """Drop reservations no window can reach any more; returns how many."""
    status = await pool.execute("DELETE FROM guard.limit_reservations WHERE reserved_at < $1", now - older_than)
    return int(status.split()[-1])


async def erase_contact(conn: asyncpg.Connection, tenant: str, contact_id: str, hashed: str) -> None:
    """An erasure: held actions for the contact are dropped (never sent); decisions keep their ids, outcome
    and approval (a redelivered proposal must still find its decision) under the hashed contact id, without
    the rules' details (which quote the address and the draft)."""
    await conn.execute(
        "DELETE FROM guard.deferred WHERE tenant = $1 AND action->'contact'->>'contact_id' = $2", tenant, contact_id
    )
    await conn.execute(
        "UPDATE guard.decisions SET contact_id = $3, rules = '[]'::jsonb, reason = 'erased' "
        "WHERE tenant = $1 AND contact_id = $2",
        tenant,
        contact_id,
        hashed,
    )
    await conn.execute(
        "UPDATE guard.limit_reservations SET counter = regexp_replace(counter, '/contact/.*$', '/contact/' || $3) "
        "WHERE tenant = $1 AND right(counter, length('/contact/' || $2)) = '/contact/' || $2",
        tenant,
        contact_id,
        hashed,
    )
    await conn.execute(
        "UPDATE guard.delivery_problems SET contact_id = $3 WHERE tenant = $1 AND contact_id = $2",
        tenant,
        contact_id,
        hashed,
    )


async def record_delivery_problem(
    conn: asyncpg.Connection, tenant: str, withdrawn: ConsentWithdrawn, offset: int
) -> None:
    """A withdrawal from the consent feed, kept for the circuit breakers (bounces, complaints, unsubscribes)."""
    await conn.execute(
        "INSERT INTO guard.delivery_problems(tenant, upstream_source, upstream_event_id, contact_id, reason, "
        "occurred_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        tenant,
        withdrawn.upstream_source,
        withdrawn.upstream_event_id,
        withdrawn.contact_id,
        withdrawn.reason.value,
        withdrawn.occurred_at,
    )


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

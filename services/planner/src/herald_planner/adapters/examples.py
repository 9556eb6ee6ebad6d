"""Reviewers' edits and reasons as examples for later drafts (Postgres), kept per workflow, touch and segment."""

from __future__ import annotations

import asyncpg

from herald_planner.logic import ReviewerExample


class DraftExamples:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, *, tenant: str, workflow: str, step: str, segment: str, example: ReviewerExample) -> None:
        await self.pool.execute(
            "INSERT INTO planner.draft_examples(review_id, tenant, workflow, step, segment, decision, reviewer, "
            "reason, original_subject, original_body, edited_subject, edited_body, decided_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (review_id) DO NOTHING",
            example.review_id,
            tenant,
            workflow,
            step,
            segment,
            example.decision,
            example.reviewer,
            example.reason,
            example.original_subject,
            example.original_body,
            example.edited_subject,
            example.edited_body,
            example.decided_at,
        )

    async def recent(
        self, tenant: str, workflow: str, step: str, segment: str, limit: int = 5
    ) -> list[ReviewerExample]:
        """The newest examples for drafts like this one, newest first."""
        rows = await self.pool.fetch(
            "SELECT review_id, reviewer, decision, reason, original_subject, original_body, edited_subject, "
            "edited_body, decided_at FROM planner.draft_examples WHERE tenant = $1 AND workflow = $2 AND step = $3 "
            "AND segment = $4 ORDER BY decided_at DESC LIMIT $5",
            tenant,
            workflow,
            step,
            segment,
            limit,
        )
        return [ReviewerExample(**dict(r)) for r in rows]

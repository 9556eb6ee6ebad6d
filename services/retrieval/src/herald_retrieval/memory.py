"""Herald's memory of each contact and of what reviewers taught it, in three tiers.

- short term: a workflow's own working set (its evidence and recalled memories), kept in the
  planner's run state; not here.
- medium term: recent interactions per contact (emails sent, replies, meetings) in Postgres,
  each until its TTL; written from `herald.executed.v1` and `herald.events.v1`.
- long term: lasting memories in Weaviate, searchable by meaning: reviewers' feedback (from
  `herald.review-decision.v1`, for the whole tenant) and summaries of a contact's expired
  interactions (the sweeper folds them in when they leave the medium tier).

`Recall(tenant, contact, query)` merges the tiers: the contact's recent interactions (newest
first) and the long-term memories most relevant to the query, fused by reciprocal rank.

Handlers, by topic:
    herald.events.v1           → on_interaction      (EmailReplied, ReplyReceived, MeetingBooked; ContactErased forgets)
    herald.executed.v1         → on_interaction      (a sent email)
    herald.review-decision.v1  → on_review_decision  (a reviewer's reason)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from prometheus_client import Counter

from herald_core.auth.services import ServiceKeys
from herald_core.bus import Inbound, Outbound, Rejected
from herald_core.contracts import (
    ActionExecuted,
    ContactErased,
    EmailReplied,
    ExecutionResolved,
    ExecutionStatus,
    MeetingBooked,
    ReplyReceived,
    ResolutionOutcome,
    ReviewDecided,
)
from herald_core.observability import get_logger
from herald_core.signing import VerificationError, verify_decision
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.interactions import InteractionLog
from herald_retrieval.adapters.memory_store import Memory, WeaviateMemoryStore
from herald_retrieval.ranking import reciprocal_rank_fusion

MEMORIES = Counter("herald_retrieval_memories_total", "Memories written, by tier and kind.", ["tier", "kind"])
log = get_logger("herald.retrieval.memory")
SUMMARY_ITEMS = 12  # interactions spelled out in a summary; the rest are counted


def interaction_of(msg: Inbound) -> Memory | None:
    """The medium-term memory a message makes, if it is an interaction with a contact."""
    body, envelope = msg.body, msg.envelope
    if isinstance(body, EmailReplied):
        text = f"Replied “{body.subject}”" + (f": {body.snippet}" if body.snippet else "")
        return Memory(envelope.id, "medium", "reply", text[:2000], body.occurred_at, body.contact_id)
    if isinstance(body, ReplyReceived):
        said = body.text.strip()
        if body.out_of_office:
            back = f", back on {body.returns_on:%Y-%m-%d}" if body.returns_on else ""
            text = f"Out of office (automatic reply to “{body.subject}”{back})"
        else:
            text = f"Replied “{body.subject}”" + (f": {said}" if said else "")
        return Memory(envelope.id, "medium", "reply", text[:2000], body.occurred_at, body.contact.contact_id)
    if isinstance(body, MeetingBooked):
        text = f"Meeting booked: “{body.title}” on {body.starts_at:%Y-%m-%d %H:%M} UTC"
        return Memory(envelope.id, "medium", "meeting", text, body.occurred_at, body.contact_id)
    sent_at = None
    if isinstance(body, ActionExecuted) and body.status is ExecutionStatus.SUCCEEDED:
        sent_at = envelope.time
    elif isinstance(body, ExecutionResolved) and body.outcome is ResolutionOutcome.HAPPENED:
        sent_at = body.resolved_at  # an email in doubt that a person found sent is an email the contact has
    if sent_at is not None and isinstance(body, ActionExecuted | ExecutionResolved) and body.tool == "send_email":
        text = f"Sent {body.summary}" if body.summary else "Sent an email"
        return Memory(envelope.id, "medium", "email_sent", text, sent_at, body.contact_id)
    return None


def feedback_of(msg: Inbound) -> Memory | None:
    """A reviewer's reason as a tenant-wide memory, with what the email was and whom it was for."""
    decided = msg.body
    if not isinstance(decided, ReviewDecided):
        return None
    said = [decided.reason.strip()] if (decided.reason or "").strip() else []
    if decided.edit is not None:  # what a reviewer rewrote says what the draft should have been
        if decided.edit.subject is not None:
            said.append(f"changed the subject to “{decided.edit.subject}”")
        if decided.edit.body_text is not None:
            said.append(f"rewrote the body as: {decided.edit.body_text[:800]}")
    if not said:
        return None
    contact = decided.action.contact
    who = ", ".join(filter(None, [contact.job_title, contact.industry and f"in {contact.industry}"]))
    who += " (VIP)" if contact.vip else ""
    text = (
        f"Reviewer feedback ({decided.decision.value}) on the {decided.action.describe().split(' to ')[0]}"
        f"{f' to a {who}' if who else ''}: {'; '.join(said)}"
    )
    return Memory(
        f"feedback-{decided.review_id}",
        "long",
        "reviewer_feedback",
        text[:2000],
        decided.decided_at,
        "",
        about=contact.contact_id,
    )


def summary_of(contact_id: str, interactions: Sequence[Memory]) -> Memory:
    """One long-term memory for a contact's expired interactions (oldest first)."""
    ordered = sorted(interactions, key=lambda m: m.occurred_at)
    first, last = ordered[0].occurred_at, ordered[-1].occurred_at
    lines = [f"{m.occurred_at:%Y-%m-%d} {m.text}" for m in ordered[:SUMMARY_ITEMS]]
    if len(ordered) > SUMMARY_ITEMS:
        lines.append(f"and {len(ordered) - SUMMARY_ITEMS} more")
    text = f"Earlier with this contact ({first:%Y-%m-%d} to {last:%Y-%m-%d}): " + "; ".join(lines)
    # named after its last interaction: a retried sweep writes the same summary again, not a second one
    return Memory(f"summary-{ordered[-1].memory_id}", "long", "summary", text[:2000], last, contact_id)


def merge(medium: Sequence[Memory], long: Sequence[Memory], k: int) -> list[Memory]:
    """The contact's recent interactions (newest first) and the relevant long-term memories, fused by rank."""
    return reciprocal_rank_fusion([medium, long], k, key=lambda m: m.memory_id)


class MemoryKeeper:
    def __init__(
        self,
        interactions: InteractionLog,
        store: WeaviateMemoryStore,
        embedder: OnnxEmbedder,
        *,
        alpha: float,
        decision_keys: ServiceKeys,
    ) -> None:
        self.decision_keys = decision_keys  # a reviewer's feedback counts only as the review service signed it
        self.interactions = interactions
        self.store = store
        self.embedder = embedder
        self.alpha = alpha

    async def on_interaction(self, msg: Inbound) -> list[Outbound]:
        """Remember an interaction with a contact (or forget the contact, on its erasure); other messages on
        these topics say nothing to memory."""
        if isinstance(msg.body, ContactErased):
            await self.forget(msg.envelope.tenant, msg.body.contact_id)
            return []
        interaction = interaction_of(msg)
        if interaction is not None and await self.interactions.record(msg.envelope.tenant, interaction):
            MEMORIES.labels("medium", interaction.kind).inc()
        return []

    async def forget(self, tenant: str, contact_id: str) -> None:
        """An erasure: every tier's memories of the contact, and the feedback learnt from its emails."""
        rows = await self.interactions.forget(tenant, contact_id)
        memories = await self.store.forget_contact(tenant, contact_id)
        log.info("contact forgotten", interactions=rows, memories=memories)

    async def on_review_decision(self, msg: Inbound) -> list[Outbound]:
        decided = msg.body_as(ReviewDecided)
        try:  # what a forged decision says must never become what the drafter reads
            verify_decision(decided, self.decision_keys)
        except VerificationError as exc:
            raise Rejected(f"review decision {decided.review_id} refused ({exc.reason}): {exc.detail}") from exc
        feedback = feedback_of(msg)
        if feedback is not None:
            await self.remember(msg.envelope.tenant, [feedback])
            log.info("reviewer feedback remembered", memory_id=feedback.memory_id)
        return []

    async def remember(self, tenant: str, memories: list[Memory]) -> None:
        """Write long-term memories (embedded here)."""
        vectors = await asyncio.to_thread(self.embedder.embed, [m.text for m in memories])
        await self.store.put(tenant, memories, vectors)
        for memory in memories:
            MEMORIES.labels("long", memory.kind).inc()

    async def recall(self, tenant: str, contact_id: str, query: str, k: int) -> list[Memory]:
        vector = await asyncio.to_thread(self.embedder.embed_one, query) if query.strip() else None
        medium, long = await asyncio.gather(
            self.interactions.recent(tenant, contact_id, k),
            self.store.search(tenant, contact_id, query, vector, k, alpha=self.alpha),
        )
        return merge(medium, long, k)

    async def consolidate(self, batch: int = 1000) -> int:
        """Fold expired interactions into one long-term summary per contact; how many were folded."""
        async with self.interactions.expired(batch) as expired:
            by_contact: dict[tuple[str, str], list[Memory]] = defaultdict(list)
            for tenant, interaction in expired:
                by_contact[(tenant, interaction.contact_id)].append(interaction)
            by_tenant: dict[str, list[Memory]] = defaultdict(list)
            for (tenant, contact_id), interactions in by_contact.items():
                by_tenant[tenant].append(summary_of(contact_id, interactions))
            for tenant, summaries in by_tenant.items():
                await self.remember(tenant, summaries)
        if expired:
            log.info("expired interactions summarised", interactions=len(expired), contacts=len(by_contact))
        return len(expired)

"""The topic table: every Kafka topic Herald uses, declared once.

Deploy manifests, the local stack's topic creation and the AsyncAPI document are all
generated from `TOPICS`; a handler's name says the topic it serves (`on_proposed_action`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Key(StrEnum):
    """What a topic's record key is made of; one contact's messages stay ordered."""

    TENANT_CONTACT = "tenant:contact"
    TENANT_CONTACT_CHANNEL = "tenant:contact:channel"
    TENANT_ACTION = "tenant:action"
    TENANT_DOCUMENT = "tenant:document"
    TENANT = "tenant"
    SCOPE = "global|tenant:<id>|budget:<id>"
    ANY = "any"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: Key
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    partitions: int
    retention_ms: int | None = 7 * 24 * 3600 * 1000
    compacted: bool = False
    pipeline: bool = True
    max_message_bytes: int | None = None
    message_types: tuple[str, ...] = field(default=())
    doc: str = ""

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def config(self) -> dict[str, str]:
        cfg: dict[str, str] = {}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
            cfg["min.compaction.lag.ms"] = "0"
        if self.retention_ms is not None and not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.max_message_bytes is not None:
            cfg["max.message.bytes"] = str(self.max_message_bytes)
        return cfg


PIPELINE_PARTITIONS = 6
# a knowledge document travels whole; its audit copy and any dead letter of it must fit too
LARGE_MESSAGE_BYTES = 4 * 1024 * 1024

EVENTS = TopicSpec(
    "herald.events.v1",
    Key.TENANT_CONTACT,
    ("ingest",),
    ("planner", "retrieval", "executor"),
    PIPELINE_PARTITIONS,
    message_types=(
        "herald.contact.created.v1",
        "herald.contact.updated.v1",
        "herald.consent.withdrawn.v1",
        "herald.contact.erased.v1",
        "herald.message.replied.v1",
        "herald.message.reply-received.v1",
        "herald.message.engagement.v1",
        "herald.meeting.booked.v1",
    ),
    doc="Validated, de-duplicated upstream facts about contacts: CRM changes, consent, replies, engagement "
    "with Herald's emails, meetings.",
)
PLAN = TopicSpec(
    "herald.plan.v1",
    Key.TENANT_CONTACT,
    ("planner",),
    ("planner",),
    PIPELINE_PARTITIONS,
    message_types=(
        "herald.plan.created.v1",
        "herald.workflow.ended.v1",
        "herald.reply.classified.v1",
        "herald.lead.qualified.v1",
        "herald.task.accepted.v1",
        "herald.task.proposed.v1",
        "herald.task.failed.v1",
    ),
    doc="Plans the planner made, with the evidence they rest on, what it read each reply to mean and how it "
    "scored each lead (the contact's other runs act on both), and the end of each workflow run (why it stopped); "
    "campaign tasks accepted (keyed `tenant:<task id>`; the planner carries each through its steps once), their "
    "batches proposed and their failures.",
)
PROPOSED_ACTION = TopicSpec(
    "herald.proposed-action.v1",
    Key.TENANT_CONTACT,
    ("planner",),
    ("guard",),
    PIPELINE_PARTITIONS,
    message_types=("herald.action.proposed.v1", "herald.action.withdrawn.v1"),
    doc="Actions the planner wants taken (nothing here has been allowed yet), and withdrawals of those its "
    "workflows no longer want (the guard blocks them at any later decision).",
)
DECISION = TopicSpec(
    "herald.decision.v1",
    Key.TENANT_CONTACT,
    ("guard",),
    ("planner",),
    PIPELINE_PARTITIONS,
    message_types=("herald.action.blocked.v1", "herald.action.escalated.v1", "herald.action.deferred.v1"),
    doc="The guard's non-approving decisions (blocked by a rule, escalated to review), so workflows learn of them.",
)
REVIEW = TopicSpec(
    "herald.review.v1",
    Key.TENANT_CONTACT,
    ("guard",),
    ("review",),
    PIPELINE_PARTITIONS,
    message_types=("herald.review.requested.v1",),
    doc="Requests for a human decision.",
)
REVIEW_DECISION = TopicSpec(
    "herald.review-decision.v1",
    Key.TENANT_CONTACT,
    ("review",),
    ("guard", "retrieval", "planner"),
    PIPELINE_PARTITIONS,
    message_types=("herald.review.decided.v1",),
    doc="Reviewers' answers, back to the guard, which re-checks every hard rule before it signs; their reasons "
    "become long-term memory, and their edits examples for the planner's later drafts of the same kind.",
)
APPROVED_ACTION = TopicSpec(
    "herald.approved-action.v1",
    Key.TENANT_CONTACT,
    ("guard",),
    ("executor",),
    PIPELINE_PARTITIONS,
    message_types=("herald.action.approved.v1",),
    doc="Signed approvals. Only the guard writes here; the executor reads nothing else.",
)
EXECUTED = TopicSpec(
    "herald.executed.v1",
    Key.TENANT_CONTACT,
    ("executor", "review"),
    ("planner", "retrieval", "review", "executor", "ingest"),
    PIPELINE_PARTITIONS,
    message_types=("herald.action.executed.v1", "herald.action.refused.v1", "herald.execution.resolved.v1"),
    doc="What the executor did (or refused to do) with each approval, and what a person found when an execution "
    "was in doubt.",
)
CONSENT = TopicSpec(
    "herald.consent.v1",
    Key.TENANT_CONTACT_CHANNEL,
    ("ingest", "planner"),
    ("guard", "executor"),
    PIPELINE_PARTITIONS,
    retention_ms=None,
    compacted=True,
    message_types=("herald.consent.withdrawn.v1", "herald.consent.granted.v1", "herald.contact.erased.v1"),
    doc="Latest consent state per contact and channel (compacted); an erasure is keyed on channel `all`.",
)
KNOWLEDGE = TopicSpec(
    "herald.knowledge.v1",
    Key.TENANT_DOCUMENT,
    ("cli",),
    ("retrieval",),
    PIPELINE_PARTITIONS,
    max_message_bytes=LARGE_MESSAGE_BYTES,
    message_types=("herald.document.submitted.v1", "herald.document.deleted.v1"),
    doc="Documents for a tenant's knowledge base (added, replaced, deleted), one key per document; written by "
    "`herald kb` or an upstream system holding the herald-cli credentials.",
)
KNOWLEDGE_INDEXED = TopicSpec(
    "herald.knowledge-indexed.v1",
    Key.TENANT_DOCUMENT,
    ("retrieval",),
    ("cli", "retrieval"),  # retrieval: every replica forgets cached answers on a change (its cache invalidator)
    PIPELINE_PARTITIONS,
    message_types=("herald.document.indexed.v1", "herald.document.refused.v1"),
    doc="What became of each submitted document: indexed, unchanged, deleted, or refused with the reason.",
)
POLICY = TopicSpec(
    "herald.policy.v1",
    Key.TENANT,
    ("cli",),
    ("guard",),
    1,
    retention_ms=None,
    compacted=True,
    pipeline=False,
    message_types=("herald.policy.published.v1",),
    doc="Each tenant's policy (compacted: the latest per tenant), published by `herald policy apply`; every guard "
    "replica reads it from the beginning and follows it, so a new version applies without a restart.",
)
CONTROL = TopicSpec(
    "herald.control.v1",
    Key.SCOPE,
    ("cli", "review", "guard"),
    ("guard", "executor", "planner"),
    1,
    retention_ms=None,
    compacted=True,
    pipeline=False,
    message_types=("herald.control.kill-switch.v1", "herald.control.llm-budget.v1"),
    doc="Kill switches, global and per tenant, and spent LLM budgets (`budget:<tenant>`) (compacted: the latest "
    "per scope); the guard and the executor follow it and stop acting for what a switch covers within a second; "
    "the planner drafts from templates while a tenant's budget for the day is spent.",
)
LLM_USAGE = TopicSpec(
    "herald.llm-usage.v1",
    Key.TENANT,
    ("planner",),
    ("guard",),
    PIPELINE_PARTITIONS,
    message_types=("herald.llm.usage.v1",),
    doc="Tokens of every LLM call, per tenant; the guard sums them against the policy's daily budget.",
)
TIMERS = TopicSpec(
    "herald.workflow-timer.v1",
    Key.TENANT_CONTACT,
    ("planner",),
    ("planner",),
    PIPELINE_PARTITIONS,
    message_types=("herald.workflow.timer-fired.v1",),
    doc="Workflow timers that reached their deadline, fired from the planner's timer table and read back in the "
    "contact's order (a timer takes effect once, however often it is published).",
)
AUDIT = TopicSpec(
    "herald.audit.v1",
    Key.ANY,
    ("*",),
    ("review",),
    PIPELINE_PARTITIONS,
    retention_ms=-1,
    pipeline=False,
    max_message_bytes=LARGE_MESSAGE_BYTES,
    doc="A copy of every message on every topic, written in the same transaction as the original, "
    "plus rejections at the edge and dead letters.",
)

AUDIT_SEALED = TopicSpec(
    "herald.audit-sealed.v1",
    Key.ANY,
    ("review",),
    ("cli",),
    PIPELINE_PARTITIONS,
    retention_ms=-1,
    pipeline=False,
    max_message_bytes=LARGE_MESSAGE_BYTES,
    doc="The audit, sealed: each record of herald.audit.v1 in the same partition and order, with the SHA-256 "
    "of the one before it and its own (`herald audit verify` walks the chain).",
)

TOPICS: tuple[TopicSpec, ...] = (
    EVENTS,
    PLAN,
    PROPOSED_ACTION,
    DECISION,
    REVIEW,
    REVIEW_DECISION,
    APPROVED_ACTION,
    EXECUTED,
    CONSENT,
    KNOWLEDGE,
    KNOWLEDGE_INDEXED,
    POLICY,
    CONTROL,
    LLM_USAGE,
    TIMERS,
    AUDIT,
    AUDIT_SEALED,
)

#: the services that consume a topic, from the table (the CLI reads, but dead-letters nothing)
CONSUMERS: tuple[str, ...] = tuple(dict.fromkeys(c for spec in TOPICS for c in spec.consumers if c != "cli"))


def dead_letter_topic(consumer: str) -> TopicSpec:
    """One dead-letter topic per consuming service: reason and origin travel in headers."""
    return TopicSpec(
        f"herald.dlq.{consumer}.v1",
        Key.ANY,
        (consumer,),
        (),
        1,
        retention_ms=30 * 24 * 3600 * 1000,
        pipeline=False,
        max_message_bytes=LARGE_MESSAGE_BYTES,
        doc=f"Messages {consumer} could not accept, with the reason.",
    )


DEAD_LETTER_TOPICS: tuple[TopicSpec, ...] = tuple(dead_letter_topic(c) for c in CONSUMERS)


def all_topics() -> tuple[TopicSpec, ...]:
    return TOPICS + DEAD_LETTER_TOPICS


def contact_key(tenant: str, contact_id: str) -> bytes:
    return f"{tenant}:{contact_id}".encode()


def consent_key(tenant: str, contact_id: str, channel: str) -> bytes:
    """The key of a contact's consent for one channel (or `all`) on the compacted consent topic."""
    return f"{tenant}:{contact_id}:{channel}".encode()


def tenant_key(tenant: str) -> bytes:
    return tenant.encode()


def document_key(tenant: str, doc_id: str) -> bytes:
    return f"{tenant}:{doc_id}".encode()


def task_key(tenant: str, task_id: str) -> bytes:
    """A campaign task's messages on the plan topic, in order."""
    return f"{tenant}:{task_id}".encode()

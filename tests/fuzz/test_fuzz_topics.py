"""Mutated records written straight to every topic a service consumes never stop a consumer: within seconds every
consumer group's committed offset (and each consent feed's stored position) passes them, each record no consumer
can read is on every consumer's dead-letter topic, unchanged, with the reason; every audit record is sealed;
nothing the services published for the tenant breaks its contract; and every replica is still ready.

Valid bodies are built from the contracts, then mutated (JSON values, bytes, `ce_*` headers, keys). A mutated
record that stays readable is handled like any other: it is published only when it acts for the test's own
tenant alone (a kill switch without a tenant would stop every other test)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import strategies as st

from fuzzing import (
    SETTLE_SECONDS,
    TOPIC_RECORDS,
    Read,
    Sent,
    Summary,
    acts_beyond,
    committed,
    consent_positions,
    dumps,
    end_offsets,
    generate,
    mutated_bytes,
    mutated_json,
    not_ready,
    poll,
    publish_all,
    read_since,
    reworded_json,
    why_unreadable,
)
from herald_core.consent import address_hash
from herald_core.contracts import (
    MESSAGE_TYPES,
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionExecuted,
    ActionRefused,
    ActionWithdrawn,
    CampaignBrief,
    CampaignTaskAccepted,
    CampaignTaskFailed,
    CampaignTaskProposed,
    ConsentGranted,
    ConsentReason,
    ConsentWithdrawn,
    ContactCreated,
    ContactErased,
    ContactFacts,
    ContactUpdated,
    Contract,
    DeadLettered,
    DocumentDeleted,
    DocumentIndexed,
    DocumentRefused,
    DocumentSubmitted,
    EmailEngagement,
    EmailReplied,
    EngagementKind,
    EventRejected,
    ExecutionResolved,
    ExecutionStatus,
    KillSwitchChanged,
    LeadQualified,
    LeadTier,
    LlmBudgetChanged,
    LlmUsageReported,
    MediaType,
    MeetingBooked,
    PlanCreated,
    PlanStep,
    PolicyPublished,
    ReplyClassified,
    ReplyIntent,
    ReplyMatch,
    ReplyReceived,
    ResolutionOutcome,
    ReviewDecided,
    ReviewDecision,
    ReviewRequested,
    RuleHit,
    ScoreFeature,
    SegmentFilter,
    TimerFired,
    WorkflowEnded,
)
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.signing import sign_decision
from herald_core.topics import (
    APPROVED_ACTION,
    AUDIT,
    AUDIT_SEALED,
    CONSENT,
    CONSUMERS,
    CONTROL,
    DECISION,
    EVENTS,
    EXECUTED,
    KNOWLEDGE,
    KNOWLEDGE_INDEXED,
    LLM_USAGE,
    PLAN,
    POLICY,
    PROPOSED_ACTION,
    REVIEW,
    REVIEW_DECISION,
    TIMERS,
    TOPICS,
    TopicSpec,
    dead_letter_topic,
)
from support import approve, email_action, tool_action, tool_input

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.e2e,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.weaviate,
    pytest.mark.smtp,
]

#: every consumer group, as each service's app.py names its workers (`{prefix}herald-{service}-{name}`)
GROUPS: dict[tuple[str, str], tuple[TopicSpec, ...]] = {
    ("planner", "workflows"): (EVENTS, DECISION, EXECUTED, REVIEW_DECISION, TIMERS, PLAN),
    ("guard", "decisions"): (PROPOSED_ACTION, REVIEW_DECISION, LLM_USAGE),
    ("review", "queue"): (REVIEW, EXECUTED),
    ("review", "sealer"): (AUDIT,),
    ("executor", "actions"): (APPROVED_ACTION,),
    ("executor", "stats"): (EVENTS, EXECUTED),
    ("retrieval", "knowledge"): (KNOWLEDGE,),
    ("retrieval", "memory"): (EVENTS, EXECUTED, REVIEW_DECISION),
    ("ingest", "sent"): (EXECUTED,),
    ("planner", "tasks"): (PLAN,),
}
#: the readers outside a group: consent feeds (positions in Postgres), followers of compacted topics, the cache
#: invalidator; each dead-letters what it cannot read under its service's name
FOLLOWERS: dict[TopicSpec, tuple[str, ...]] = {
    CONSENT: ("guard", "executor"),
    CONTROL: ("guard", "executor", "planner"),
    POLICY: ("guard",),
    KNOWLEDGE_INDEXED: ("retrieval",),
}
CONSENT_FEEDS = ("guard", "executor")  # the schemas whose consent_offsets say how far each feed applied
#: a consumer that seals rather than dead-letters: every record it reads is on the sealed topic
SEALED = {AUDIT}
CONSUMED: tuple[TopicSpec, ...] = tuple(
    dict.fromkeys([*(s for specs in GROUPS.values() for s in specs), *FOLLOWERS]).keys()
)
#: where a follower's progress shows only in its dead letters: one unreadable record on each partition, last
SENTINEL_TOPICS = (CONTROL, POLICY, KNOWLEDGE_INDEXED)
#: the topics the services publish to (what they made of the records must keep its contract)
SERVICES = ("planner", "guard", "review", "executor", "retrieval")
PRODUCED = (*(s for s in TOPICS if set(s.producers) & set(SERVICES) and s is not AUDIT_SEALED), AUDIT)


def dead_letterers(spec: TopicSpec) -> set[str]:
    """The services that dead-letter a record of `spec` none can read (the sealer seals it instead)."""
    grouped = {service for (service, name), specs in GROUPS.items() if spec in specs and spec not in SEALED}
    return grouped | set(FOLLOWERS.get(spec, ()))


def test_the_table_names_every_consumer_this_test_covers() -> None:
    for spec in TOPICS:
        readers = {c for c in spec.consumers if c != "cli"}
        covered = {service for (service, _), specs in GROUPS.items() if spec in specs} | set(FOLLOWERS.get(spec, ()))
        assert readers == covered, (spec.name, readers, covered)


# ---------------------------------------------------------------- valid records, from the contracts


def policy_source(tenant: str, version: int) -> str:
    return (
        f"tenant: {tenant}\nversion: {version}\ndescription: fuzz\nrules:\n"
        "  - id: escalation.low_confidence\n    when: action.confidence < 0.6\n    then: escalate\n"
        "    reason: the planner is unsure\n"
    )


def valid_body(herald, tenant: str, kind: str, marker: str, variant: int) -> Contract:  # type: ignore[no-untyped-def]
    """A valid body of contract `kind` about contact `marker` (the marker is in every record's key and body)."""
    now = datetime.now(UTC)
    email = f"{marker}@buyers.example"
    upstream: dict[str, Any] = {"upstream_source": "fuzz", "upstream_event_id": marker, "occurred_at": now}
    facts = ContactFacts(
        contact_id=marker,
        email=email,
        first_name="Ann",
        company="Northwind Freight",
        job_title="Head of Operations",
        industry="logistics",
    )
    if variant % 3 == 2:
        action = tool_action(tenant, "update_crm_record", tool_input("update_crm_record", marker), contact_id=marker)
    else:
        action = email_action(tenant, contact_id=marker, email=email, rationale=f"fuzz {marker}")
    rules = (RuleHit(rule="fuzz.rule", outcome="pass", detail=marker),)
    ids = {"action_id": action.action_id, "workflow_id": action.workflow_id, "contact_id": marker}
    match kind:
        case ContactCreated.TYPE:
            return ContactCreated(contact=facts, **upstream)
        case ContactUpdated.TYPE:
            return ContactUpdated(contact=facts, changed_property="job_title", new_value="VP", **upstream)
        case ConsentWithdrawn.TYPE:
            return ConsentWithdrawn(contact_id=marker, email=email, reason=ConsentReason.UNSUBSCRIBE, **upstream)
        case ConsentGranted.TYPE:
            return ConsentGranted(contact_id=marker, **upstream)
        case ContactErased.TYPE:
            return ContactErased(contact_id=marker, email_sha256=address_hash(email), **upstream)
        case EmailReplied.TYPE:
            return EmailReplied(contact_id=marker, subject="Re: hello", snippet=f"Thanks {marker}", **upstream)
        case ReplyReceived.TYPE:
            return ReplyReceived(
                contact=facts,
                message_id=f"<{marker}@mail.example>",
                matched_by=ReplyMatch.SENDER,
                from_address=email,
                subject="Re: hello",
                text=f"Thanks {marker}, tell me more.",
                upstream_source="fuzz",
                upstream_event_id=marker,
                occurred_at=now,
            )
        case EmailEngagement.TYPE:
            return EmailEngagement(
                contact_id=marker, kind=EngagementKind.OPENED, message_id=f"<{marker}@herald.example>", **upstream
            )
        case MeetingBooked.TYPE:
            return MeetingBooked(contact_id=marker, title="Intro", starts_at=now + timedelta(days=3), **upstream)
        case PlanCreated.TYPE:
            step = PlanStep(tool="send_email", purpose="first touch")
            return PlanCreated(
                workflow_id=action.workflow_id,
                workflow="new_lead_first_touch",
                contact_id=marker,
                steps=(step,),
                planner="template",
                query=f"logistics {marker}",
                evidence=(),
            )
        case "herald.action.proposed.v1":
            return action
        case ActionWithdrawn.TYPE:
            return ActionWithdrawn(
                action_id=action.action_id,
                tenant=tenant,
                workflow_id=action.workflow_id,
                contact_id=marker,
                reason=f"replied {marker}",
                withdrawn_at=now,
            )
        case TimerFired.TYPE:
            return TimerFired(
                timer_id=f"tm-{marker}",
                workflow_id=action.workflow_id,
                workflow="new_lead_sequence",
                contact_id=marker,
                name="touch_2",
                due_at=now,
                fired_at=now,
            )
        case ReplyClassified.TYPE:
            return ReplyClassified(
                workflow_id=action.workflow_id,
                contact_id=marker,
                reply_message_id=f"<{marker}@mail.example>",
                intent=ReplyIntent.NOT_NOW,
                confidence=0.9,
                classifier="rules",
                until=(now + timedelta(days=30)).date(),
                classified_at=now,
            )
        case CampaignTaskAccepted.TYPE:
            brief = CampaignBrief(
                campaign_id=f"fz-{marker}",
                topic=f"approval workflows {marker}",
                segment=SegmentFilter(industries=("logistics",)),
                variants={"proof": "lead with a customer result"},
            )
            return CampaignTaskAccepted(
                task_id=f"task-{new_id()}", tenant=tenant, brief=brief, requested_by="fuzz", accepted_at=now
            )
        case CampaignTaskProposed.TYPE:
            return CampaignTaskProposed(
                task_id=f"task-{new_id()}",
                campaign_id=f"fz-{marker}",
                steps=(PlanStep(tool="send_email", purpose=marker),),
                query="approvals",
                evidence=(),
                audience=1,
                variants={"proof": 1},
                actions=(action.action_id,),
                review_reason=f"campaign task {marker}",
                proposed_at=now,
            )
        case CampaignTaskFailed.TYPE:
            return CampaignTaskFailed(task_id=f"task-{new_id()}", reason=f"no segment {marker}", failed_at=now)
        case LeadQualified.TYPE:
            return LeadQualified(
                workflow_id=action.workflow_id,
                contact=facts,
                score=45,
                tier=LeadTier.WARM,
                features=(ScoreFeature(name="seniority", seen=f"{marker} → vp", points=25),),
                hot_at=70,
                warm_at=40,
                qualified_at=now,
            )
        case WorkflowEnded.TYPE:
            return WorkflowEnded(
                workflow_id=action.workflow_id,
                workflow="new_lead_sequence",
                contact_id=marker,
                state="exited",
                reason=f"replied {marker}",
                ended_at=now,
            )
        case ActionBlocked.TYPE:
            return ActionBlocked(**ids, rule="fuzz.rule", reason=marker, rules=rules, stage="proposal")
        case ActionEscalated.TYPE:
            return ActionEscalated(**ids, review_id=f"rv-{marker}", reason=marker, rules=rules)
        case ActionDeferred.TYPE:
            return ActionDeferred(
                **ids, release_at=now + timedelta(hours=1), reason=marker, rules=rules, stage="proposal"
            )
        case ReviewRequested.TYPE:
            return ReviewRequested(review_id=f"rv-{marker}", action=action, reason=marker, rules=rules)
        case ReviewDecided.TYPE:
            decision = ReviewDecision.APPROVED if variant % 2 else ReviewDecision.REJECTED
            decided = ReviewDecided(
                review_id=f"rv-{marker}",
                action=action,
                decision=decision,
                reviewer="fuzz",
                reason=marker,
                decided_at=now,
            )
            # signed as the review service signs (a mutation then breaks the signature, and is refused)
            return sign_decision(decided, herald.service_keys("review"), timedelta(hours=1))
        case "herald.action.approved.v1":
            return approve(herald, action, ttl=timedelta(minutes=10) if variant % 2 else timedelta(seconds=-60))
        case ActionExecuted.TYPE:
            return ActionExecuted(
                **ids, tool="send_email", status=ExecutionStatus.SUCCEEDED, result={"message_id": f"<{marker}@x>"}
            )
        case ActionRefused.TYPE:
            return ActionRefused(action_id=action.action_id, contact_id=marker, reason="bad_signature", detail=marker)
        case ExecutionResolved.TYPE:
            return ExecutionResolved(
                **ids,
                review_id=f"rv-{marker}",
                tool="send_email",
                outcome=ResolutionOutcome.DID_NOT_HAPPEN,
                reviewer="fuzz",
                reason=marker,
                resolved_at=now,
            )
        case PolicyPublished.TYPE:
            version = 1000 + variant
            source = policy_source(tenant, version)
            return PolicyPublished(
                tenant=tenant,
                version=version,
                source=source,
                sha256=hashlib.sha256(source.encode()).hexdigest(),
                published_by="fuzz",
                note=marker,
            )
        case KillSwitchChanged.TYPE:
            return KillSwitchChanged(tenant=tenant, engaged=False, reason=marker, set_by="fuzz")
        case LlmBudgetChanged.TYPE:
            return LlmBudgetChanged(
                tenant=tenant, day=date.today(), exhausted=False, used_tokens=variant, budget_tokens=10**6
            )
        case LlmUsageReported.TYPE:
            return LlmUsageReported(
                workflow_id=action.workflow_id,
                purpose="draft",
                model=marker,
                input_tokens=3,
                output_tokens=5,
                occurred_at=now,
            )
        case DocumentSubmitted.TYPE:
            return DocumentSubmitted(
                doc_id=f"fuzz/{marker}",
                collection="product",
                media_type=MediaType.MARKDOWN,
                content=f"# Note {marker}\n\nDock scheduling for carriers.",
            )
        case DocumentDeleted.TYPE:
            return DocumentDeleted(doc_id=f"fuzz/{marker}")
        case DocumentIndexed.TYPE:
            return DocumentIndexed(
                doc_id=f"fuzz/{marker}", collection="product", title=marker, status="indexed", chunks=1
            )
        case DocumentRefused.TYPE:
            return DocumentRefused(doc_id=f"fuzz/{marker}", reason=marker)
        case EventRejected.TYPE:
            return EventRejected(status_code=422, reason=marker, endpoint="/v1/events", upstream_event_id=marker)
        case DeadLettered.TYPE:
            return DeadLettered(
                consumer="fuzz", original_topic=marker, original_partition=0, original_offset=0, reason=marker
            )
    raise AssertionError(f"no valid sample of {kind}")


def default_key(spec: TopicSpec, tenant: str, marker: str) -> bytes:
    if spec is CONSENT:
        return f"{tenant}:{marker}:email".encode()
    if spec in (KNOWLEDGE, KNOWLEDGE_INDEXED):
        return f"{tenant}:fuzz/{marker}".encode()
    if spec is CONTROL:
        return f"tenant:{tenant}:{marker}".encode()
    return f"{tenant}:{marker}".encode()


# ---------------------------------------------------------------- mutations of headers and keys

REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_tenant", "ce_correlationid")
OTHER_TYPES = sorted(MESSAGE_TYPES)


@st.composite
def mutated_headers(
    draw: st.DrawFn, headers: list[tuple[str, bytes | None]], spec: TopicSpec
) -> tuple[list[tuple[str, bytes | None]], str]:
    kind = draw(
        st.sampled_from(
            [
                "null_value",
                "null_extra",
                "drop",
                "non_utf8",
                "unknown_type",
                "other_type",
                "bad_time",
                "none",
                "extra_bytes",
                "long_subject",
                "empty_tenant",
                "specversion",
            ]
        )
    )
    found = list(headers)
    if kind == "null_value":
        index = draw(st.integers(0, len(found) - 1))
        found[index] = (found[index][0], None)
        return found, f"{found[index][0]} without a value"
    if kind == "null_extra":
        return [*found, ("x-upstream-trace", None)], "an extra header without a value"
    if kind == "drop":
        name = draw(st.sampled_from(REQUIRED_HEADERS))
        return [h for h in found if h[0] != name], f"{name} left out"
    if kind == "non_utf8":
        name = draw(st.sampled_from([*REQUIRED_HEADERS, "ce_time", "ce_subject", "ce_traceparent"]))
        return [*(h for h in found if h[0] != name), (name, b"\xff\xfe" + name.encode())], f"{name} not UTF-8"
    if kind in ("unknown_type", "other_type"):
        carried = set(spec.message_types)
        other = draw(st.sampled_from([t for t in OTHER_TYPES if t not in carried] or OTHER_TYPES))
        value = b"herald.fuzz.nothing.v1" if kind == "unknown_type" else other.encode()
        return [(n, value if n == "ce_type" else v) for n, v in found], f"ce_type {value.decode()}"
    if kind == "bad_time":
        return [*(h for h in found if h[0] != "ce_time"), ("ce_time", b"yesterday")], "ce_time not a time"
    if kind == "none":
        return [], "no headers"
    if kind == "extra_bytes":
        return [*found, ("x-fuzz", b"\xff\x00\xfe")], "an extra header of raw bytes"
    if kind == "long_subject":
        return [*(h for h in found if h[0] != "ce_subject"), ("ce_subject", b"s" * 50_000)], "ce_subject of 50000 bytes"
    if kind == "empty_tenant":
        return [(n, b"" if n == "ce_tenant" else v) for n, v in found], "ce_tenant empty"
    return [(n, b"0.3" if n == "ce_specversion" else v) for n, v in found], "ce_specversion 0.3"


@st.composite
def mutated_key(draw: st.DrawFn, key: bytes, marker: bytes) -> tuple[bytes | None, str]:
    kind = draw(st.sampled_from(["null", "empty", "non_utf8", "long", "elsewhere"]))
    if kind == "null":
        return None, "null key"
    if kind == "empty":
        return b"", "empty key"
    if kind == "non_utf8":
        return b"\xff\xfe" + key, "key not UTF-8"
    if kind == "long":
        return b"k" * 20_000 + key, "key of 20000 bytes"
    return b"fuzz-elsewhere:" + marker + b":email", "key of another tenant"


@st.composite
def topic_record(  # type: ignore[no-untyped-def]
    draw: st.DrawFn, spec: TopicSpec, herald, tenant: str, markers: Iterator[str], prefix: str
) -> Sent:
    marker = next(markers)
    kind = draw(st.sampled_from(spec.message_types or OTHER_TYPES))
    body = valid_body(herald, tenant, kind, marker, draw(st.integers(0, 5)))
    envelope = Envelope.new_chain(source="test/fuzz", type=kind, tenant=tenant, subject=f"contact/{marker}")
    headers: list[tuple[str, bytes | None]] = list(envelope.to_headers())
    if spec is AUDIT:
        headers.append(("herald_topic", f"{prefix}herald.events.v1".encode()))
    key: bytes | None = default_key(spec, tenant, marker)
    what: list[str] = [kind]
    shape = draw(st.integers(0, 9))
    if shape < 6:
        strategy = mutated_json if shape < 4 else reworded_json
        mutated, done = draw(strategy(body.model_dump(mode="json")))
        value: bytes | None = dumps(mutated)
        what += done
    elif shape < 7:
        value, done_bytes = draw(mutated_bytes(body.model_dump_json().encode()))
        what.append(done_bytes)
    elif shape < 8:
        value = None
        what.append("null value")
    else:
        value = body.model_dump_json().encode()
    if shape >= 8 or draw(st.integers(0, 3)) == 0:
        headers, done_headers = draw(mutated_headers(headers, spec))
        what.append(done_headers)
    if draw(st.integers(0, 6)) == 0:
        key, done_key = draw(mutated_key(key, marker.encode()))
        what.append(done_key)
    if marker.encode() not in (value or b"") and marker.encode() not in (key or b""):
        key = default_key(spec, tenant, marker)  # so its dead letter can be found
    unreadable = why_unreadable(spec, headers, value)
    if spec is CONSENT and value is None and not headers:
        unreadable = None  # a tombstone: compaction's business, not a record to dead-letter
    return Sent(spec, spec.full_name(prefix), marker.encode(), key, value, headers, what, unreadable)


def sentinels(herald, tenant: str, run: str) -> list[Sent]:  # type: ignore[no-untyped-def]
    """One unreadable record on each partition of the followed topics that keep no position: its dead letter
    shows that the follower read past everything before it."""
    found = []
    for spec in SENTINEL_TOPICS:
        for partition in range(spec.partitions):
            marker = f"fzsentinel{run}{spec.name}{partition}".encode()
            envelope = Envelope.new_chain(source="test/fuzz", type=spec.message_types[0], tenant=tenant)
            sent = Sent(
                spec,
                herald.topic(spec),
                marker,
                default_key(spec, tenant, marker.decode()),
                b"{not json " + marker,
                list(envelope.to_headers()),
                ["sentinel"],
                "body breaks the contract",
            )
            sent.partition = partition
            found.append(sent)
    return found


# ---------------------------------------------------------------- the test


async def test_mutated_records_on_every_consumed_topic_are_dead_lettered_and_nothing_wedges(
    herald,  # type: ignore[no-untyped-def]
    summary: Summary,
) -> None:
    tenant = herald.add_tenant(f"fztopics{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    markers = (f"fz{run}{n:06d}" for n in range(10**6))
    share = max(1, TOPIC_RECORDS // len(CONSUMED))  # every consumed topic gets its share
    made: list[Sent] = [
        record
        for spec in CONSUMED
        for record in generate(topic_record(spec, herald, tenant, markers, herald.prefix), share, spec.name)
    ]
    records = [r for r in made if r.unreadable or not acts_beyond(r, tenant, r.spec in (CONTROL, POLICY))]
    summary.skipped_records += len(made) - len(records)
    records += sentinels(herald, tenant, run)

    dlq_topics = {service: herald.topic(dead_letter_topic(service)) for service in CONSUMERS}
    watched = [*dlq_topics.values(), herald.topic(AUDIT_SEALED), *(herald.topic(s) for s in PRODUCED)]
    starts = await end_offsets(herald.bootstrap, watched)
    refusals = await publish_all(herald.bootstrap, records)
    refused = {id(r) for r, _ in refusals}
    summary.refused_by_kafka.update(f"{r.spec.name}: {why}" for r, why in refusals)
    records = [r for r in records if id(r) not in refused]  # what Kafka would not carry, no consumer can meet
    for r in records:
        summary.topic_records[r.spec.name] += 1
    summary.unreadable_records += sum(1 for r in records if r.unreadable)

    dead: dict[str, list[Read]] = {}
    sealed: list[Read] = []

    async def outstanding() -> list[str]:
        left: list[str] = []
        for (service, name), specs in GROUPS.items():
            group = f"{herald.prefix}herald-{service}-{name}"
            offsets = await committed(herald.bootstrap, group)
            for r in records:
                if r.spec in specs and offsets.get(TopicPartition(r.topic, r.partition), -1) <= r.offset:
                    left.append(f"group {group} has not passed {r.describe()}")
        for schema in CONSENT_FEEDS:
            positions = await consent_positions(herald.pg_dsn, schema)
            for r in records:
                if r.spec is CONSENT and positions.get(r.partition, -1) <= r.offset:
                    left.append(f"the {schema} consent feed has not passed {r.describe()}")
        for service, topic in dlq_topics.items():
            dead[service] = await read_since(herald.bootstrap, {tp: o for tp, o in starts.items() if tp.topic == topic})
        for r in records:
            if not r.unreadable:
                continue
            for service in sorted(dead_letterers(r.spec)):
                if not any(r.mine(d) and d.headers.get("herald_dlq_topic") == r.topic for d in dead[service]):
                    left.append(f"no dead letter from {service} of {r.describe()}")
        sealed[:] = await read_since(
            herald.bootstrap, {tp: o for tp, o in starts.items() if tp.topic == herald.topic(AUDIT_SEALED)}
        )
        for r in records:
            if r.spec in SEALED and not any(r.mine(s) for s in sealed):
                left.append(f"not sealed: {r.describe()}")
        return left

    left = await poll(outstanding, timeout=SETTLE_SECONDS, interval=2.0)

    # what each dead letter says, and that it carries the record unchanged
    unchanged: list[str] = []
    for service, found in dead.items():
        for r in records:
            for d in found:
                if not r.mine(d) or d.headers.get("herald_dlq_topic") != r.topic:
                    continue
                summary.dead_lettered(service, d.headers.get("herald_dlq_reason", ""))
                if not d.headers.get("herald_dlq_reason"):
                    unchanged.append(f"{service}: a dead letter without a reason: {r.describe()}")
                elif (d.key, d.value) != (r.key, r.value):
                    unchanged.append(f"{service}: the dead letter is not the record: {r.describe()}")
    summary.sealed += sum(1 for r in records if r.spec in SEALED and any(r.mine(s) for s in sealed))

    wedged = sorted({line.split(" has not passed ")[0] for line in left if " has not passed " in line})
    summary.wedged += wedged
    missing = [line for line in left if " has not passed " not in line]
    summary.missing_dead_letters += missing

    # nothing the services made of it breaks a contract
    published = await read_since(
        herald.bootstrap, {tp: o for tp, o in starts.items() if tp.topic in {herald.topic(s) for s in PRODUCED}}
    )
    by_topic = {herald.topic(s): s for s in PRODUCED}
    invalid = []
    for record in published:
        if record.headers.get("ce_tenant") != tenant or not record.headers.get("ce_source", "").startswith("herald/"):
            continue
        problem = why_unreadable(by_topic[record.topic], record.raw_headers, record.value)
        if problem is not None:
            kind, shown = record.headers.get("ce_type"), (record.value or b"")[:300]
            invalid.append(f"{record.topic}@{record.partition}:{record.offset} {kind}: {problem}: {shown!r}")
    summary.invalid_downstream += invalid

    failing = await not_ready(herald)
    summary.not_ready.update(failing)

    assert not wedged, (
        f"{len(wedged)} consumer(s) did not move past the records within {SETTLE_SECONDS:.0f}s:\n"
        + "\n".join(line for line in left if " has not passed " in line)[:6000]
    )
    assert not missing, f"{len(missing)} record(s) not dead-lettered or sealed:\n" + "\n".join(missing[:15])[:6000]
    assert not unchanged, "\n".join(unchanged[:15])
    assert not invalid, f"{len(invalid)} record(s) the services published break their contract:\n" + "\n".join(
        invalid[:15]
    )
    assert not failing, failing

"""The planner's drafting, as pure functions: retrieval queries, contacts as an email may name them, and
template drafts whose every claim is quoted from a retrieved passage. (The workflows are in `workflows/`.)"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from herald_core.contracts import MAX_QUERY_CHARS, ContactFacts, EvidenceRef, LlmUsageReported, MemoryRef
from herald_core.tenants import FirstTouch
from herald_core.tools import FetchCampaignStatsOutput


def bounded_query(text: str, limit: int = MAX_QUERY_CHARS) -> str:
    """`text` cut to what the retrieval API takes, at a word boundary when there is one: a CRM field can be
    as long as its sender likes, and the lead must be planned all the same."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def retrieval_query(contact: ContactFacts) -> str:
    parts = [contact.industry or "", "customer story results", contact.job_title or "", "product overview"]
    return bounded_query(" ".join(p for p in parts if p))


def house_rules(products: Sequence[str], competitors: Sequence[str]) -> str:
    """What the LLM is told of the tenant's names (the same words every draft of the tenant)."""
    rules = []
    if products:
        rules.append(f"Products you may name: {', '.join(products)}.")
    if competitors:
        rules.append(
            f"Competitors ({', '.join(competitors)}): describe them only as the passages do, never run them down."
        )
    return " ".join(rules)


def segment_of(contact: ContactFacts) -> str:
    """The segment reviewers' examples are kept and applied by: the contact's industry (lower case)."""
    return (one_line(contact.industry, 100) or "any").lower()


def touch_query(contact: ContactFacts, touch: int, touches: int) -> str:
    """What to retrieve for an email of a sequence: the first asks for results, a follow-up for another
    benefit, the last for the quickest win (each finds passages the others did not)."""
    if touch <= 1:
        return retrieval_query(contact)
    angle = "getting started quickly first week" if touch >= touches else "benefits time saved fewer errors"
    parts = [contact.industry or "", contact.job_title or "", angle]
    return bounded_query(" ".join(p for p in parts if p))


def memory_query(contact: ContactFacts) -> str:
    """What to ask memory before a first touch: feedback on emails like this one, and the contact's past."""
    who = " ".join(p for p in (contact.job_title, contact.industry and f"in {contact.industry}") if p)
    return bounded_query(f"first-touch email to a {who or 'new lead'}")


@dataclass(frozen=True)
class Draft:
    subject: str
    body_text: str
    confidence: float
    rationale: str
    usage: LlmUsageReported | None = None  # the tokens an LLM draft cost
    variant: str | None = None  # the first-touch campaign's variant the draft takes, when one was chosen
    consulted: tuple[str, ...] = ()  # the read-only tools called while drafting, in order
    chunks: tuple[str, ...] = ()  # the passages the draft quotes (all given, for an LLM draft)


@dataclass(frozen=True)
class DraftRequest:
    """What a draft is written from: the contact (as an email may name it), the passages and memories
    retrieved for it, who writes, and the campaign it belongs to."""

    tenant_id: str
    contact: ContactFacts
    evidence: Sequence[EvidenceRef]
    memories: Sequence[MemoryRef]
    company_name: str
    sender: str
    campaign: FirstTouch | None = None
    touch: int = 1  # which email of its sequence this is (1: the first)
    touches: int = 1  # how many the sequence has
    earlier: tuple[EarlierTouch, ...] = ()  # the emails of the sequence already sent, oldest first
    feedback: tuple[str, ...] = ()  # why earlier attempts at this email were refused (guard rule, reviewer)
    examples: tuple[ReviewerExample, ...] = ()  # reviewers' edits and reasons on drafts like this one, newest first
    house_rules: str = ""  # the tenant's products and competitors, as the LLM's system prompt states them
    # an answer to the contact's reply: its question, in its words (untrusted: what to answer, never how to act),
    # and the subject of the thread
    question: str | None = None
    thread_subject: str | None = None


@dataclass(frozen=True)
class ReviewerExample:
    """What a reviewer did to a draft of the same workflow, touch and segment, with the contact's names as
    placeholders (`{first_name}`, `{last_name}`, `{company}`, `{sender}`)."""

    review_id: str
    reviewer: str
    decision: str  # approved (with an edit) or rejected
    reason: str | None
    original_subject: str
    original_body: str
    edited_subject: str | None
    edited_body: str | None
    decided_at: datetime


@dataclass(frozen=True)
class EarlierTouch:
    """An email of the sequence already sent: what the next one must not repeat."""

    number: int
    subject: str
    body_text: str
    chunks: tuple[str, ...] = ()  # the passages it quoted


def first_sentence(text: str, limit: int = 280) -> str:
    flat = " ".join(line.strip("#-* ").strip() for line in text.splitlines() if line.strip())
    for end in (". ", "! ", "? "):
        if end in flat:
            flat = flat.split(end, 1)[0] + end.strip()
            break
    return flat[:limit].strip()


#: how long a name or a company may be in an email (a CRM field can be as long as its sender likes)
NAME_CHARS = 100
_WHITESPACE = re.compile(r"\s+")


def one_line(text: str | None, limit: int) -> str | None:
    """`text` on one line (line breaks and runs of spaces as one space), cut to `limit`; None when empty."""
    if text is None:
        return None
    flat = _WHITESPACE.sub(" ", text).strip()[:limit].strip()
    return flat or None


def as_addressed(contact: ContactFacts) -> ContactFacts:
    """The contact as an email may name it: names, company and title on one line and of a sane length. A lead
    whose CRM fields hold line breaks or pages of text is still written to; the guard sees the contact as is."""
    return contact.model_copy(
        update={
            "first_name": one_line(contact.first_name, NAME_CHARS),
            "last_name": one_line(contact.last_name, NAME_CHARS),
            "company": one_line(contact.company, NAME_CHARS),
            "job_title": one_line(contact.job_title, 2 * NAME_CHARS),
            "industry": one_line(contact.industry, NAME_CHARS),
        }
    )


def recipient_name(contact: ContactFacts) -> str | None:
    """The display name an email to the contact carries."""
    return one_line(" ".join(filter(None, [contact.first_name, contact.last_name])), 200)


def consultation(tool: str, tool_input: Mapping[str, Any], answer: Mapping[str, Any] | None, error: str = "") -> str:
    """One read-tool call as a reviewer reads it in a rationale: what was asked, then the figures or the failure,
    short (`fetch_campaign_stats(first-touch): proof 12 sends 5 opens 1 clicks 0 replies; question …`)."""
    asked = str(tool_input.get("campaign_id") or ", ".join(f"{k}={v}" for k, v in tool_input.items()))[:100]
    call = f"{tool}({asked})"
    if error or answer is None:
        return f"{call} failed: {error[:200] or 'no answer'}"
    if tool == "fetch_campaign_stats":
        try:
            stats = FetchCampaignStatsOutput.model_validate(answer)
        except ValidationError:
            return f"{call}: answered"
        figures = "; ".join(
            f"{v.variant} {v.sends} sends {v.opens} opens {v.clicks} clicks {v.replies} replies"
            for v in stats.variants[:10]
        )
        return f"{call}: {figures or 'nothing sent yet'}"
    return f"{call}: answered"


def remembered(memories: Sequence[MemoryRef], limit: int = 3) -> str:
    """The memories worth a reviewer's eye, as a sentence to append to a rationale ("" if none)."""
    ranked = sorted(memories, key=lambda m: m.kind != "reviewer_feedback")[:limit]
    if not ranked:
        return ""
    return "; remembered: " + " | ".join(m.text[:300] for m in ranked)

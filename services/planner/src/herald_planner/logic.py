"""The planner's workflow state machine and template drafting, as pure functions.

Workflow `new_lead_first_touch`:

    started ──► proposed ──► completed            (executed)
                   │  ├────► blocked              (a guard rule)
                   │  ├────► failed / in_doubt    (the executor; a person's check settles in_doubt:
                   │  │                             happened → completed, did_not_happen → failed)
                   │  ├────► deferred ──► …       (outside the send window; decided again when it opens)
                   │  └────► awaiting_review ──► completed | blocked
                   └ skipped                      (no address to write to)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, StrictUndefined
from pydantic import ValidationError

from herald_core.contracts import MAX_QUERY_CHARS, ContactFacts, EvidenceRef, LlmUsageReported, MemoryRef
from herald_core.tools import FetchCampaignStatsOutput

WORKFLOW = "new_lead_first_touch"

# (state, what happened) → next state; anything else is ignored as stale or duplicate
TRANSITIONS: dict[tuple[str, str], str] = {
    ("proposed", "escalated"): "awaiting_review",
    ("proposed", "blocked"): "blocked",
    ("awaiting_review", "blocked"): "blocked",
    ("proposed", "succeeded"): "completed",
    ("awaiting_review", "succeeded"): "completed",
    ("proposed", "failed"): "failed",
    ("awaiting_review", "failed"): "failed",
    ("proposed", "in_doubt"): "in_doubt",
    ("awaiting_review", "in_doubt"): "in_doubt",
    ("proposed", "refused"): "failed",
    ("awaiting_review", "refused"): "failed",
    ("proposed", "deferred"): "deferred",
    ("awaiting_review", "deferred"): "deferred",
    ("deferred", "succeeded"): "completed",
    ("deferred", "blocked"): "blocked",
    ("deferred", "escalated"): "awaiting_review",
    ("deferred", "failed"): "failed",
    ("deferred", "in_doubt"): "in_doubt",
    ("deferred", "refused"): "failed",
    ("in_doubt", "happened"): "completed",
    ("in_doubt", "did_not_happen"): "failed",
}


def next_state(state: str, event: str) -> str | None:
    return TRANSITIONS.get((state, event))


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


_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701 - plain text
_BODY = _env.from_string(
    """Hi {{ first_name }},

Thanks for your interest in {{ company_name }}. {{ opener }}

{% for passage in proof %}- {{ passage }}
{% endfor %}
Would a 20-minute call next week be useful to see how this would look for {{ their_company }}?

Best,
{{ sender }}
"""
)


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


def template_draft(
    contact: ContactFacts,
    evidence: list[EvidenceRef],
    *,
    company_name: str,
    sender: str,
    memories: Sequence[MemoryRef] = (),
) -> Draft:
    """A first-touch email whose every claim is quoted from a retrieved passage; the rationale names
    what memory brought up (reviewers' feedback first), so a reviewer sees what the plan knew."""
    proof = [first_sentence(e.quote) for e in evidence[:3] if e.quote.strip()]
    industry = contact.industry or "your"
    opener = f"Here is what teams in {industry} tell us after switching:" if proof else "I'd love to learn more."
    body = _BODY.render(
        first_name=contact.first_name or "there",
        company_name=company_name,
        opener=opener,
        proof=proof,
        their_company=contact.company or "your team",
        sender=sender,
    )
    subject = f"{contact.first_name or 'Hello'}, how {industry} teams use {company_name}"
    confidence = 0.8 if len(proof) >= 2 else 0.5
    rationale = (
        f"New lead ({contact.lifecycle_stage or 'lead'}) in {industry}; first touch built from "
        f"{len(proof)} retrieved passage(s): {', '.join(e.doc_id for e in evidence[:3]) or 'none'}"
    ) + remembered(memories)
    return Draft(subject=one_line(subject, 200) or "Hello", body_text=body, confidence=confidence, rationale=rationale)


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

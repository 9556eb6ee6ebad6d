"""A campaign task's emails without an LLM: each variant leads with other passages of the topic's, every claim
quoted from one, and each contact's email takes its variant's passages that fit it best (its industry and role),
never its own company's story told to it as someone else's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jinja2 import Environment, StrictUndefined

from herald_core.contracts import ContactFacts, EvidenceRef
from herald_planner.logic import Draft, one_line
from herald_planner.tasks.logic import variant_order
from herald_planner.templates import proof_for

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701 - plain text
_CAMPAIGN = _env.from_string(
    """Hi {{ first_name }},

A short note from {{ company_name }} about {{ topic }}. {{ opener }}

{% for passage in proof %}- {{ passage }}
{% endfor %}
Would a 20-minute call next week be useful to see how this would look for {{ their_company }}?

Best,
{{ sender }}
"""
)


def variant_passages(evidence: Sequence[EvidenceRef], variants: Mapping[str, str]) -> dict[str, list[EvidenceRef]]:
    """Each variant's passages: all of the topic's, each variant leading with another one (in the order retrieval
    ranked them), so the variants say different things first and their figures can be compared."""
    names = variant_order(variants)
    if not evidence:
        return {name: [] for name in names}
    return {name: [*evidence[i % len(evidence) :], *evidence[: i % len(evidence)]] for i, name in enumerate(names)}


def campaign_draft(
    contact: ContactFacts,
    passages: Sequence[EvidenceRef],
    *,
    topic: str,
    company_name: str,
    sender: str,
) -> Draft:
    """One contact's email of a variant: up to three of the variant's passages, those fitting the contact first."""
    proof = proof_for(contact, passages)
    industry = contact.industry or "your field"
    opener = f"Here is what teams in {industry} tell us:" if proof else ""
    body = _CAMPAIGN.render(
        first_name=contact.first_name or "there",
        company_name=company_name,
        topic=topic,
        opener=opener,
        proof=[p.line for p in proof],
        their_company=contact.company or "your team",
        sender=sender,
    )
    subject = f"{contact.first_name or 'Hello'}, {topic}"
    used = ", ".join(p.evidence.doc_id for p in proof) or "none"
    return Draft(
        subject=one_line(subject, 200) or "Hello",
        body_text=body,
        confidence=0.8 if len(proof) >= 2 else 0.5,
        rationale=f"drafted from the template with {len(proof)} retrieved passage(s): {used}",
        chunks=tuple(p.evidence.chunk_id for p in proof),
    )

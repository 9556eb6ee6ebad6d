"""Drafts without an LLM: every claim quoted from a retrieved passage, passages chosen for the contact's role
and industry, never the contact's own company told to it as someone else's story, and each email of a
sequence saying something the earlier ones did not.

A refused attempt is drafted again without what was refused: the terms a block's reason quotes (an
unsupported claim, a banned phrase) keep the passages that hold them out of the next attempt.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from jinja2 import Environment, StrictUndefined

from herald_core.contracts import ContactFacts, EvidenceRef, MemoryRef
from herald_planner.logic import Draft, DraftRequest, first_sentence, one_line, remembered

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701 - plain text
_FIRST = _env.from_string(
    """Hi {{ first_name }},

Thanks for your interest in {{ company_name }}. {{ opener }}

{% for passage in proof %}- {{ passage }}
{% endfor %}
Would a 20-minute call next week be useful to see how this would look for {{ their_company }}?

Best,
{{ sender }}
"""
)
_FOLLOW_UP = _env.from_string(
    """Hi {{ first_name }},

A short follow-up to my last note, with something I did not mention{{ for_role }}:

{% for passage in proof %}- {{ passage }}
{% endfor %}
If that is worth a look for {{ their_company }}, reply with a time that suits you and I will set it up.

Best,
{{ sender }}
"""
)
_LAST = _env.from_string(
    """Hi {{ first_name }},

I will leave it here so I do not crowd your inbox.{% if proof %} One last thing: {{ proof[0] }}{% endif %}

If it becomes a priority for {{ their_company }}, just reply to this email.

Best,
{{ sender }}
"""
)

_ANSWER = _env.from_string(
    """Hi {{ first_name }},

Thanks for your question. Here is what I can tell you:

{% for passage in proof %}- {{ passage }}
{% endfor %}
If that does not fully answer it, reply and I will bring in the right person.

Best,
{{ sender }}
"""
)

#: words too common to tell one company from another by the first word of its name
_GENERIC_HEADS = frozenset({"the", "global", "international", "united", "first", "general", "national", "american"})
_WORD = re.compile(r"[a-z][a-z0-9-]{3,}")
_QUOTED = re.compile(r"“([^”]{2,200})”|\"([^\"]{2,200})\"")


def names_company(text: str, company: str | None) -> bool:
    """Whether `text` names the company (its full name, or a distinctive first word: "Northwind" of
    "Northwind Freight")."""
    if not company or not company.strip():
        return False
    lowered = text.lower()
    name = " ".join(company.lower().split())
    if name in " ".join(lowered.split()):
        return True
    words = name.split()
    head = words[0] if len(words) > 1 else None
    return bool(
        head and len(head) >= 4 and head not in _GENERIC_HEADS and re.search(rf"\b{re.escape(head)}\b", lowered)
    )


def _stems(text: str | None) -> set[str]:
    return {word.rstrip("s") for word in _WORD.findall((text or "").lower())}


def refused_terms(feedback: Iterable[str]) -> list[str]:
    """What the reasons of refused attempts quote: unsupported claims (“62%”), banned phrases (listed after the
    reason's last colon), in lower case."""
    terms: list[str] = []
    for reason in feedback:
        quoted = [a or b for a, b in _QUOTED.findall(reason)]
        if quoted:
            terms += quoted
        elif ":" in reason:
            terms += [part.strip() for part in reason.rsplit(":", 1)[1].split(",")]
    return [t.lower() for t in dict.fromkeys(terms) if len(t.strip()) >= 2]


@dataclass(frozen=True)
class Proof:
    evidence: EvidenceRef
    line: str


def proof_for(
    contact: ContactFacts,
    evidence: Sequence[EvidenceRef],
    *,
    limit: int = 3,
    used: Iterable[str] = (),
    avoid: Sequence[str] = (),
) -> list[Proof]:
    """The passages to quote, as one sentence each: none naming the contact's own company, none holding a
    refused term, none an earlier email quoted (while others are left), the most relevant to the contact's
    industry and role first (retrieval's order among equals)."""
    used = set(used)
    wanted = _stems(contact.industry) | _stems(contact.job_title)
    candidates: list[tuple[int, int, Proof]] = []
    for order, passage in enumerate(evidence):
        line = first_sentence(passage.quote)
        if not line or names_company(line, contact.company):
            continue  # their own company's story, told to them as another's, is the mistake to avoid
        if any(term in line.lower() for term in avoid):
            continue
        relevance = len(wanted & _stems(f"{passage.title} {passage.quote}"))
        candidates.append((-relevance, order, Proof(passage, line)))
    fresh = [c for c in candidates if c[2].evidence.chunk_id not in used]
    chosen = sorted(fresh or candidates)[:limit]
    return [proof for _, _, proof in chosen]


def template_draft(
    contact: ContactFacts,
    evidence: Sequence[EvidenceRef],
    *,
    company_name: str,
    sender: str,
    memories: Sequence[MemoryRef] = (),
    avoid: Sequence[str] = (),
) -> Draft:
    """A first email whose every claim is quoted from a retrieved passage; the rationale names what memory
    brought up (reviewers' feedback first), so a reviewer sees what the plan knew."""
    proof = proof_for(contact, evidence, avoid=avoid)
    industry = contact.industry or "your"
    opener = f"Here is what teams in {industry} tell us after switching:" if proof else "I'd love to learn more."
    body = _FIRST.render(
        first_name=contact.first_name or "there",
        company_name=company_name,
        opener=opener,
        proof=[p.line for p in proof],
        their_company=contact.company or "your team",
        sender=sender,
    )
    subject = f"{contact.first_name or 'Hello'}, how {industry} teams use {company_name}"
    confidence = 0.8 if len(proof) >= 2 else 0.5
    rationale = (
        f"New lead ({contact.lifecycle_stage or 'lead'}) in {industry}; first touch built from "
        f"{len(proof)} retrieved passage(s): {', '.join(p.evidence.doc_id for p in proof) or 'none'}"
    ) + remembered(memories)
    return Draft(
        subject=one_line(subject, 200) or "Hello",
        body_text=body,
        confidence=confidence,
        rationale=rationale,
        chunks=tuple(p.evidence.chunk_id for p in proof),
    )


def _in_thread(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def follow_up_draft(request: DraftRequest, avoid: Sequence[str] = ()) -> Draft:
    """A later email of the sequence, in the thread of the first: passages no earlier email quoted, framed for
    the contact's role; the last one short, with at most one new passage."""
    contact = request.contact
    used = {chunk for touch in request.earlier for chunk in touch.chunks}
    last = request.touch >= request.touches
    proof = proof_for(contact, request.evidence, limit=1 if last else 2, used=used, avoid=avoid)
    proof = [p for p in proof if p.evidence.chunk_id not in used]  # nothing new to say: say less, not the same
    template = _LAST if last else _FOLLOW_UP
    body = template.render(
        first_name=contact.first_name or "there",
        for_role=f" that matters to a {contact.job_title}" if contact.job_title else "",
        proof=[p.line for p in proof],
        their_company=contact.company or "your team",
        sender=request.sender,
    )
    first = request.earlier[0].subject if request.earlier else f"{request.company_name} for {contact.company or 'you'}"
    kind = "last, short touch" if last else "follow-up"
    rationale = (
        f"Touch {request.touch} of {request.touches} ({kind}) in the thread of touch 1, after "
        f"{len(request.earlier)} email(s) sent; {len(proof)} passage(s) none of them quoted: "
        f"{', '.join(p.evidence.doc_id for p in proof) or 'none'}"
    ) + remembered(request.memories)
    return Draft(
        subject=one_line(_in_thread(first), 200) or "Re: hello",
        body_text=body,
        confidence=0.7 if proof or last else 0.5,
        rationale=rationale,
        chunks=tuple(p.evidence.chunk_id for p in proof),
    )


def answer_draft(request: DraftRequest, avoid: Sequence[str] = ()) -> Draft:
    """An answer to the contact's question in its thread: the passages retrieved for the question, quoted, most
    relevant to its words first; nothing of the question itself is repeated (it is the contact's text)."""
    contact = request.contact
    asked = _stems(request.question)
    candidates = []
    for order, passage in enumerate(request.evidence):
        line = first_sentence(passage.quote)
        if not line or names_company(line, contact.company) or any(term in line.lower() for term in avoid):
            continue
        candidates.append((-len(asked & _stems(f"{passage.title} {passage.quote}")), order, passage, line))
    chosen = sorted(candidates)[:2]
    body = _ANSWER.render(first_name=contact.first_name or "there", proof=[c[3] for c in chosen], sender=request.sender)
    matched = sum(1 for c in chosen if c[0] < 0)
    return Draft(
        subject=one_line(_in_thread(request.thread_subject or request.company_name), 200) or "Re: your question",
        body_text=body,
        confidence=0.75 if matched else 0.4,
        rationale=(
            f"An answer to the contact's question in its thread, from {len(chosen)} retrieved passage(s) "
            f"({matched} sharing its words): {', '.join(c[2].doc_id for c in chosen) or 'none'}"
        ),
        chunks=tuple(c[2].chunk_id for c in chosen),
    )


def draft_from_template(request: DraftRequest) -> Draft:
    """The template draft the request asks for: a first email, a follow-up or the last, short one; an attempt
    after a refusal leaves out what the refusal quoted, and says so."""
    avoid = refused_terms(request.feedback)
    if request.question is not None:
        draft = answer_draft(request, avoid)
    elif request.touch <= 1:
        draft = template_draft(
            request.contact,
            request.evidence,
            company_name=request.company_name,
            sender=request.sender,
            memories=request.memories,
            avoid=avoid,
        )
    else:
        draft = follow_up_draft(request, avoid)
    draft = apply_examples(draft, request)
    if request.feedback:
        left_out = f" (left out: {', '.join(avoid)})" if avoid else ""
        draft = replace(
            draft,
            rationale=f"{draft.rationale}; drafted again after: {' | '.join(request.feedback)[:600]}{left_out}",
        )
    return draft


# ---------------------------------------------------------------- learning from reviewers' edits


def _names(contact: ContactFacts, sender: str) -> list[tuple[str, str]]:
    """(text, placeholder) for the names a draft carries, longest first (so "Northwind Freight" goes whole)."""
    pairs = [
        (contact.company, "{company}"),
        (sender, "{sender}"),
        (contact.first_name, "{first_name}"),
        (contact.last_name, "{last_name}"),
    ]
    return sorted(((t.strip(), p) for t, p in pairs if t and len(t.strip()) >= 2), key=lambda x: -len(x[0]))


def generalize(text: str, contact: ContactFacts, sender: str) -> str:
    """`text` with the contact's (and the sender's) names as placeholders: what an example keeps."""
    for name, placeholder in _names(contact, sender):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", placeholder, text)
    return text


def specialize(pattern: str, contact: ContactFacts, sender: str) -> str:
    """A generalized text filled in for another contact."""
    values = {
        "{company}": contact.company or "your team",
        "{sender}": sender,
        "{first_name}": contact.first_name or "there",
        "{last_name}": contact.last_name or "",
    }
    for placeholder, value in values.items():
        pattern = pattern.replace(placeholder, value)
    return pattern


def apply_examples(draft: Draft, request: DraftRequest) -> Draft:
    """The draft with reviewers' edits of drafts like it applied: a line (or subject) a reviewer replaced or
    removed, where this draft has the same line for its own contact, is replaced or removed here too; a line a
    reviewer added after one this draft also has is added. The newest example decides a line first."""
    edits = [e for e in request.examples if e.decision == "approved" and (e.edited_body or e.edited_subject)]
    if not edits:
        return draft
    contact, sender = request.contact, request.sender
    lines = generalize(draft.body_text, contact, sender).split("\n")
    subject = generalize(draft.subject, contact, sender)
    settled: set[int] = set()  # lines an example already decided
    applied: list[str] = []
    for example in edits:
        changed = False
        if example.edited_subject and subject == example.original_subject and example.edited_subject != subject:
            subject, changed = example.edited_subject, True
        if example.edited_body:
            before, after = example.original_body.split("\n"), example.edited_body.split("\n")
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
                if tag == "equal":
                    continue
                block, replacement = before[i1:i2], after[j1:j2]
                at = _find(lines, block, settled) if block else _find(lines, before[i1 - 1 : i1], settled)
                if at is None:
                    continue
                start = at if block else at + 1
                lines[start : start + len(block)] = replacement
                settled.update(range(start, start + len(replacement)))
                changed = True
        if changed:
            applied.append(f"{example.reviewer} ({example.decided_at:%Y-%m-%d})")
    if not applied:
        return draft
    return replace(
        draft,
        subject=one_line(specialize(subject, contact, sender), 200) or draft.subject,
        body_text=specialize("\n".join(lines), contact, sender),
        rationale=f"{draft.rationale}; wording as reviewers edited drafts like it: {', '.join(applied)}",
    )


def _find(lines: list[str], block: list[str], settled: set[int]) -> int | None:
    """Where `block` starts in `lines` (untouched by an earlier example), or None."""
    if not block or not any(line.strip() for line in block):
        return None
    for start in range(len(lines) - len(block) + 1):
        span = range(start, start + len(block))
        if lines[start : start + len(block)] == block and not settled & set(span):
            return start
    return None

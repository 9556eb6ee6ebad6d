"""What a reply means, read without an LLM: one of the intents reply handling declares, with a confidence, and the
day or the person it names. Pure: no I/O.

The reply is the contact's text, untrusted: all it can do here is select an intent (and, for `not_now`, a day;
for `wrong_person`, an address that only ever becomes a lead for a person to confirm). Rules come first, each a
phrase a person uses for one intent; where several intents' phrases appear, the strongest rule wins and the
confidence drops; where none does, a question mark is a question and anything else is `unclear`, which reply
handling sends to a person. Then the reply's sentence embedding is placed among `EXAMPLES` (retrieval's
`Resemble`): it names the intent of a reply no rule reads (when it is clearly closest to one), and lowers the
confidence of a rule it clearly contradicts, so that reply goes to a person too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from dateutil import parser as dateparser

from herald_core.contracts import ReplyIntent as Intent


@dataclass(frozen=True)
class Classification:
    intent: Intent
    confidence: float  # 0..1
    classifier: str  # "rules" (offline) or "llm"
    until: date | None = None  # not_now / out_of_office: the day to come back
    referral: str | None = None  # wrong_person: the address the reply points to (untrusted: a lead to confirm)
    evidence: tuple[str, ...] = field(default=())  # the phrases that decided it, for the plan and explain


#: what people write for each intent, in a few words: the examples a reply's sentence embedding is placed among
#: (written for Herald, none taken from the test table)
EXAMPLES: dict[Intent, tuple[str, ...]] = {
    Intent.INTERESTED: (
        "This looks interesting, I'd like to know more.",
        "Yes, we are interested, please send more details.",
        "Sounds promising, what are the next steps?",
        "I like what I see, tell me more about it.",
    ),
    Intent.QUESTION: (
        "How does it integrate with our current system?",
        "What does it cost per user?",
        "Do you support single sign-on?",
        "Where is our data stored?",
        "Which carriers do you connect to?",
    ),
    Intent.MEETING_REQUEST: (
        "Can we schedule a call next week?",
        "Let's set up a demo, are you free on Thursday?",
        "Send me an invite for a 30 minute meeting.",
        "Happy to talk, how about Tuesday at 3pm?",
    ),
    Intent.NOT_NOW: (
        "Not right now, please get back to me next quarter.",
        "The timing is bad, try again in a few months.",
        "We're too busy at the moment, follow up after the holidays.",
        "Maybe later this year, not a priority now.",
    ),
    Intent.NOT_INTERESTED: (
        "No thanks, we are not interested.",
        "This is not a fit for us.",
        "We already have a solution we're happy with.",
        "We'll pass.",
    ),
    Intent.UNSUBSCRIBE: (
        "Please stop sending me emails.",
        "Unsubscribe me from this list.",
        "Remove my address, do not contact me again.",
        "I don't want to receive these messages.",
    ),
    Intent.WRONG_PERSON: (
        "I'm not the right person, please contact my colleague.",
        "She no longer works here, reach out to him instead.",
        "This isn't my department, try our operations team.",
        "You have the wrong contact, I don't handle this.",
    ),
}

# (intent, weight, pattern): the weight orders rules when several intents' phrases appear in one reply
_RULES: tuple[tuple[Intent, float, str], ...] = (
    (
        Intent.UNSUBSCRIBE,
        1.0,
        r"\bunsubscribe\b|\bstop (?:e-?mailing|emailing|contacting|sending)\b|\bremove me\b|\btake me off\b"
        r"|\bopt(?: me)? out\b|\bdon'?t (?:e-?mail|contact|write to) me\b|\bno more e-?mails\b"
        r"|\b(?:bitte )?abmelden\b|\bkeine (?:weiteren )?e-?mails\b|\bd[ée]sinscri"
        r"|\bne plus (?:m'|me )(?:envoyer|contacter)",
    ),
    (
        Intent.WRONG_PERSON,
        0.9,
        r"\b(?:not|n't) the right (?:person|contact)\b|\bwrong (?:person|contact)\b|\bleft the company\b"
        r"|\bno longer (?:works?|with)\b|\bisn'?t my (?:area|department|role)\b|\bnot my (?:area|department|role)\b"
        r"|\bi don'?t (?:handle|look after|deal with)\b|\bnicht (?:der|die) richtige\b|\bnicht zuständig\b"
        r"|\bpas la bonne personne\b",
    ),
    (
        Intent.NOT_INTERESTED,
        0.85,
        r"\bnot interested\b|\bno,? thanks?\b|\bno thank you\b|\bnot (?:a|the right) fit\b|\bisn'?t a fit\b"
        r"|\bwe(?:'ll| will) pass\b|\bwe(?:'re| are) (?:all )?set\b|\bhappy with (?:our|what)\b"
        r"|\bbuilt (?:something|our own|it) in-?house\b|\bkein interesse\b|\bne nous intéresse pas\b"
        r"|\bpas intéressés?\b",
    ),
    (
        Intent.NOT_NOW,
        0.8,
        r"\bnot (?:right )?now\b|\bnot at the moment\b|\bnot a priority\b|\btiming isn'?t\b|\bbad timing\b"
        r"|\bmaybe (?:later|next (?:month|quarter|year))\b|\bcircle back\b|\bcheck back\b|\breach out (?:again )?in\b"
        r"|\bfollow up (?:in|after|next)\b|\bafter (?:the )?(?:holidays|new year|q[1-4])\b|\btoo busy\b"
        r"|\bin the middle of\b|\bbusy with\b|\bspäter\b|\bplus tard\b",
    ),
    (
        Intent.MEETING_REQUEST,
        0.75,
        r"\b(?:call|demo|meeting|chat|intro|zoom|teams call)\b.{0,60}\b(?:monday|tuesday|wednesday|thursday|friday"
        r"|tomorrow|next week|this week|\d{1,2}(?::\d\d)?\s?(?:am|pm))\b"
        r"|\b(?:set up|schedule|book) (?:a |an )?(?:call|demo|meeting|time)\b|\bcalendar invite\b"
        r"|\bhappy to (?:chat|talk)\b"
        r"|\bfree (?:on )?(?:monday|tuesday|wednesday|thursday|friday)\b|\btelefonieren\b|\btermin\b"
        r"|\b(?:un )?rendez-vous\b",
    ),
    (
        Intent.INTERESTED,
        0.6,
        r"\binterested\b|\binteresting\b|\bsounds (?:good|great|interesting)\b|\btell me more\b"
        r"|\b(?:send|share)(?: me| over)? (?:more )?(?:info|information|details|case stud)"
        r"|\bkeen to (?:learn|hear)\b|\blearn more\b|\binteressiert\b|\bspannend\b|\bintéress",
    ),
)
_COMPILED = tuple((intent, weight, re.compile(pattern, re.IGNORECASE)) for intent, weight, pattern in _RULES)
_QUESTION = re.compile(
    r"(?:^|[.!?]\s+|\n)\s*(?:how|what|which|when|where|who|why|does|do|is|are|can|could|would|will|should|"
    r"quick question|wie|was|welche|gibt es|comment|est-ce)\b[^?\n]*\?",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_MONTHS = "january february march april may june july august september october november december".split()


def classify_offline(
    text: str,
    *,
    today: date,
    out_of_office: bool = False,
    returns_on: date | None = None,
    sender: str | None = None,
) -> Classification:
    """The reply's intent by the rules. `out_of_office` is what ingest read from the headers; `today` is the day
    dates without a year are read from."""
    if out_of_office:
        return Classification(Intent.OUT_OF_OFFICE, 1.0, "rules", until=returns_on, evidence=("automatic reply",))
    said = " ".join(text.split())
    hits = [(intent, weight, match.group(0)) for intent, weight, rule in _COMPILED if (match := rule.search(said))]
    question = _QUESTION.search(text) is not None
    if not hits:
        if question:
            return Classification(Intent.QUESTION, 0.7, "rules", evidence=("a question",))
        return Classification(Intent.UNCLEAR, 0.0, "rules")
    intent, _, phrase = max(hits, key=lambda hit: hit[1])
    if intent is Intent.INTERESTED and question:
        intent, phrase = Intent.QUESTION, "a question"  # "interesting — does it work with X?" asks something
    others = {i for i, _, _ in hits if i is not intent} - {Intent.INTERESTED}
    confidence = 0.9 if not others else 0.6
    if intent is Intent.QUESTION:
        confidence = 0.8
    evidence = tuple(dict.fromkeys([phrase, *(p for i, _, p in hits if i is not intent)]))[:4]
    until = not_before(said, today) if intent is Intent.NOT_NOW else None
    referral = referred(text, sender) if intent is Intent.WRONG_PERSON else None
    if intent is Intent.WRONG_PERSON and referral is None:
        confidence = min(confidence, 0.6)  # wrong person, but no one named: a person reads it
    return Classification(intent, confidence, "rules", until=until, referral=referral, evidence=evidence)


def referred(text: str, sender: str | None) -> str | None:
    """The one address a reply points to that is not its sender's (lower case), or None (none, or several)."""
    found = {a.lower().rstrip(".") for a in _ADDRESS.findall(text)} - {(sender or "").lower()}
    return found.pop() if len(found) == 1 else None


def not_before(text: str, today: date) -> date | None:
    """The day a "not now" reply asks to be contacted again: "in March" (the 1st of the next March), "after
    January 15", "in 3 months", "next quarter", "next year"; None when it names none."""
    lower = text.lower()
    if match := re.search(r"\bin (\d{1,2}|a|one|two|three|six) (week|month)s?\b", lower):
        words = {"a": 1, "one": 1, "two": 2, "three": 3, "six": 6}
        count = int(match.group(1)) if match.group(1).isdigit() else words[match.group(1)]
        if match.group(2) == "week":
            return today + timedelta(weeks=count)
        return _add_months(today, count)
    if re.search(r"\bnext quarter\b", lower):
        first_month = ((today.month - 1) // 3 + 1) * 3 + 1
        return date(today.year + (first_month > 12), (first_month - 1) % 12 + 1, 1)
    named_month = re.search(rf"\b(?:{'|'.join(_MONTHS)})\b", lower)
    if re.search(r"\bnext year\b|\bafter the new year\b", lower) and not named_month:
        return date(today.year + 1, 1, 1)
    for cue in re.finditer(r"\b(?:in|after|from|until|around|by|early|mid|late)\s+", lower):
        phrase = lower[cue.end() : cue.end() + 30]
        month = next((m for m in _MONTHS if phrase.startswith((m, m[:3] + " ", m[:3] + "."))), None)
        if month is None:
            continue
        has_day = re.match(r"[a-z.]+\s+(\d{1,2})(?:st|nd|rd|th)?\b", phrase)
        try:
            parsed = dateparser.parse(phrase[:20], default=_first_of_month(today), fuzzy=True)
        except (ValueError, OverflowError):
            continue
        day = parsed.date() if has_day else parsed.date().replace(day=1)
        if day <= today:
            day = day.replace(year=day.year + 1)
        return day
    return None


def _first_of_month(today: date) -> datetime:
    return datetime(today.year, today.month, 1)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)


#: a reply no rule reads takes the closest intent only when it is this close, and this much closer than the next
CLOSE_ENOUGH = 0.35
CLEAR_MARGIN = 0.08
#: a rule's intent is doubted when another is this much closer (and close in itself)
CONTRADICTION = 0.2


def examples() -> list[tuple[str, str]]:
    """(label, text) of every example, for `Resemble`."""
    return [(intent.value, text) for intent, texts in EXAMPLES.items() for text in texts]


def with_similarity(found: Classification, scores: Mapping[str, float]) -> Classification:
    """The rules' reading weighed with how close the reply is to each intent's examples (`scores`: label → best
    cosine). Out-of-office comes from the headers and stays."""
    ranked = sorted(((Intent(label), score) for label, score in scores.items()), key=lambda item: -item[1])
    if found.intent is Intent.OUT_OF_OFFICE or not ranked:
        return found
    top, score = ranked[0]
    margin = score - (ranked[1][1] if len(ranked) > 1 else -1.0)
    why = f"closest to the {top.value} examples ({score:.2f}, {margin:.2f} ahead)"
    if found.intent is Intent.UNCLEAR:
        if score >= CLOSE_ENOUGH and margin >= CLEAR_MARGIN:
            confidence = round(min(0.8, 0.5 + 2 * margin), 2)
            return Classification(top, confidence, "rules+similarity", evidence=(why,))
        return replace(found, classifier="rules+similarity")
    if top is found.intent:
        return replace(found, confidence=min(1.0, found.confidence + 0.05), classifier="rules+similarity")
    own = scores.get(found.intent.value, -1.0)
    if score >= CLOSE_ENOUGH and score - own >= CONTRADICTION:
        doubt = (*found.evidence, f"but {why}")
        return replace(found, confidence=min(found.confidence, 0.5), classifier="rules+similarity", evidence=doubt)
    return replace(found, classifier="rules+similarity")


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")


def questions_of(text: str, limit: int = 500) -> str:
    """What a reply asks, for searching the knowledge base: its sentences that end in a question mark (the
    context around them — "we would roll it out to 40 dispatchers" — is the contact's, not the question), else the
    whole text; one line, at most `limit` characters."""
    asked = [s.strip() for s in _SENTENCE.findall(text) if s.strip().endswith("?")]
    return " ".join(" ".join(asked or [text]).split())[:limit]

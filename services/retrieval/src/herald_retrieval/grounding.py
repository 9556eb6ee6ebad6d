"""Grounding check: find the factual claims in an email draft and the evidence passage behind each, if any."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

Similarity = Callable[[str, Sequence[str]], Sequence[float]]

# Share of a competitor sentence's content words that one evidence sentence must contain when no
# similarity function is given.
WORD_OVERLAP_MIN = 0.6
# With a similarity function, a sentence must also share this much of the claim's words: embedding
# similarity measures the topic ("Opsly customers are switching" is close to anything about Opsly),
# not whether the sentence says the same thing.
WORD_OVERLAP_WITH_SIMILARITY = 0.5


@dataclass(frozen=True)
class Evidence:
    passage_id: str
    text: str
    # the headings above the passage, outermost first: a heading is said of everything under it
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    kind: str
    text: str
    value: str
    start: int
    end: int
    sentence: str


@dataclass(frozen=True)
class ClaimCheck:
    claim: Claim
    supported: bool
    passage_id: str | None
    reason: str


_STOPWORDS = frozenset(
    """
    a about above after again against all almost also am an and any are around as at be because been
    before being below between both but by can could did do does doing down during each either else
    even ever every few for from further had has have having he her here hers him his how i if in
    into is it its itself just least less let like many may me might more most much must my near
    nearly neither no nor not now of off often on once only or other our ours ourselves out over own
    per quite rather same she should since so some such than that the their theirs them then there
    these they this those through thus to too under until up upon us very via was we were what when
    where whether which while who whom whose why will with within without would yet you your yours
    """.split()
)
_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
# Words that follow a number without being what it counts ("180 integrations today").
_NOT_NOUNS = frozenset(
    {"am", "pm", "percent", "pct", "cent", "dollar", "dollars", "euro", "euros", "usd", "eur", "gbp"}
    | {"today", "tonight", "tomorrow", "yesterday", "now", "already", "still", "alone", "total", "together"}
    | set(_MONTHS)
    | _WEEKDAYS
)
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "vs", "etc", "inc", "ltd", "co", "corp", "mr", "mrs", "ms", "dr", "approx", "cf"}
    | {m for m in _MONTHS if len(m) <= 4}
)

# Longest alternatives first, so "seventeen" is not read as "seven".
_WORDNUM = (
    r"(?:(?:" + "|".join(_TENS) + r")(?:[- ](?:" + "|".join(k for k, v in _UNITS.items() if 1 <= v <= 9) + r"))?"
    r"|(?:a|one)\s+hundred|hundred|" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")"
)
_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d,]\d|\.\d)"
_PERIOD_UNIT = r"(?i:seat|user|member|licen[cs]e|agent|month|mo|year|yr|annum|week|day|hour|hr)s?\b"
_PERIOD = rf"(?:\s*/\s*{_PERIOD_UNIT}|\s+(?i:per|a|an|each)\s+{_PERIOD_UNIT})*"
_CURRENCY_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP"}
_PRICES = (
    re.compile(rf"(?<![\w$€£])(?P<sym>US\$|\$|€|£)\s?(?P<amt>{_AMOUNT})(?:\s?(?P<code>USD|EUR|GBP)\b)?{_PERIOD}"),
    re.compile(rf"\b(?P<code>USD|EUR|GBP)\s?(?P<amt>{_AMOUNT}){_PERIOD}"),
    re.compile(rf"(?<![\w.,])(?P<amt>{_AMOUNT})\s?(?P<code>USD|EUR|GBP)\b{_PERIOD}"),
    re.compile(rf"(?<![\w.,])(?P<amt>{_AMOUNT})\s+(?P<word>(?i:(?:US\s+)?dollars?|euros?))\b{_PERIOD}"),
)
_DISCOUNT_PRE = r"(?:(?i:\b(?:save|saves|saving|saved)\s+(?:up\s+to\s+|an?\s+(?:extra|additional|further)\s+)?))?"
_DISCOUNT_POST = r"(?:(?i:\s+(?:off|discount)\b))?"
_PERCENTS = (
    re.compile(
        rf"{_DISCOUNT_PRE}(?<![\w.,])(?P<num>\d+(?:\.\d+)?)(?:\s?%|\s+(?i:percent|per\s+cent|pct)\b){_DISCOUNT_POST}"
    ),
    re.compile(rf"{_DISCOUNT_PRE}(?i:\b(?P<word>{_WORDNUM})\s+(?:percent|per\s+cent)\b){_DISCOUNT_POST}"),
)
_MONTH = "(?:" + "|".join(sorted((m.capitalize() for m in _MONTHS), key=len, reverse=True)) + r")\b\.?"
_DATES = (
    re.compile(r"(?<![\w/.-])(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?![\w/-]|\.\d)"),
    re.compile(r"(?<![\w/.-])(?P<year>\d{4})-(?P<month>\d{2})(?![\w/-]|\.\d)"),
    re.compile(rf"\b(?P<month>{_MONTH})\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{{4}})(?!\d))?"),
    re.compile(
        rf"(?<![\w.,])(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH})(?:,?\s+(?P<year>\d{{4}})(?!\d))?"
    ),
    re.compile(rf"\b(?P<month>{_MONTH}),?\s+(?P<year>\d{{4}})(?!\d)"),
    re.compile(r"\b[Qq](?P<quarter>[1-4])(?:\s*,?\s*|[-/]|\s+of\s+)(?P<year>\d{4})(?![-/]?\d)"),
    re.compile(r"(?<![\w.,])(?P<year>\d{4})[-\s]?[Qq](?P<quarter>[1-4])\b"),
)
_QUALIFIER = (
    r"(?:(?i:over|more\s+than|about|around|approximately|roughly|nearly|almost|at\s+least|up\s+to|under"
    r"|fewer\s+than|less\s+than)\s+)?"
)
_NUMBER = re.compile(
    rf"(?<![\w.,/:@#$€£%+-]){_QUALIFIER}(?<![\w.,/:@#$€£%+-])(?P<num>(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?)"
    r"(?![\w.,]?\d|[A-Za-z%])\+?"
)
_SPELLED_NUMBER = re.compile(rf"(?i:\b(?P<word>{_WORDNUM})\b)")
_NEXT_WORD = re.compile(r"(?:[ \t]*\n[ \t]*|[ \t]+|-)(?P<word>[A-Za-z](?:[A-Za-z-]*[A-Za-z])?)\b")
_URL = re.compile(
    r"(?i)\b(?:https?://|www\.)[^\s<>\"'()\[\]]+|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}/[^\s<>\"'()\[\]]*"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)
_LIST_MARKER = re.compile(r"(?m)^[ \t]*\d{1,2}[.)](?=[ \t])")
_BREAK = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)|\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*•]|\d{1,2}[.)]|#{1,6})[ \t])")
_LEAD = re.compile(r"\s*(?:(?:[-*•]|\d{1,2}[.)]|#{1,6})[ \t]+)?")
_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
# A knowledge note saying what may not be claimed ("Do not say Flowtide is insecure") states the
# forbidden claim in full; it must never count as evidence for that claim.
_PROHIBITION = re.compile(
    r"(?i)\b(?:do\s+not|don['’]t|never|must\s+not|may\s+not|cannot|can['’]t|should\s+not|shouldn['’]t)\s+"
    r"(?:\w+\s+)?(?:say|claim|state|suggest|imply|quote|mention|promise|offer|advertise|call|describe)\b"
)

_PRIORITY = {"price": 0, "percentage": 1, "date": 2, "product": 3, "number": 4}
_NUMBER_WORDS = 2  # an adjective and its noun: "180 prebuilt integrations"
_EVIDENCE_NUMBER_WORDS = 3


@dataclass(frozen=True)
class _Span:
    kind: str
    start: int
    end: int
    value: str


def _stem(word: str) -> str:
    """Crude stemming: drop one of -ing, -ed, -es (after s/x/z/ch/sh), -s (not -ss), then a final -e,
    so "integrates", "integrated", "integrating" and "integrate" all meet at "integrat"."""
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if not w.endswith(suffix) or len(w) - len(suffix) < 3:
            continue
        if suffix == "es" and not w[:-2].endswith(("s", "x", "z", "ch", "sh")):
            continue
        if suffix == "s" and w.endswith("ss"):
            break
        w = w[: -len(suffix)]
        break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def content_words(text: str) -> set[str]:
    """The stems of `text`'s words that are not stopwords ("Integrations are synced" -> {"integration", "sync"})."""
    words = set()
    for token in _TOKEN.findall(text.lower()):
        token = re.sub(r"['’]s$", "", token)
        if token not in _STOPWORDS:
            words.add(_stem(token))
    return words


_content_words = content_words


def _decimal(raw: str) -> Decimal | None:
    try:
        return Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return None


def _plain(d: Decimal) -> str:
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def _money(d: Decimal) -> str:
    if d == d.to_integral_value():
        return str(int(d))
    return f"{d:.2f}" if d == d.quantize(Decimal("0.01")) else format(d.normalize(), "f")


def _matched_number(m: re.Match[str]) -> Decimal | None:
    """The number of a match with a `num` (digits) or `word` (spelled out) group."""
    groups = m.groupdict()
    if groups.get("num"):
        return _decimal(groups["num"])
    return Decimal(_word_number(groups["word"]))


def _word_number(words: str) -> int:
    parts = re.split(r"[\s-]+", words.lower())
    if parts[-1] == "hundred":
        return 100
    return sum(_TENS.get(p, _UNITS.get(p, 0)) for p in parts)


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(p) for p in name.split()) + r"(?!\w)", re.IGNORECASE)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences end at . ! ? before whitespace (not after "e.g.", "vs.", "Mar." ...), at blank lines,
    and before list items and headings; single line breaks inside a paragraph are just spaces. List
    markers and heading hashes are not part of the sentence."""
    spans: list[tuple[int, int]] = []

    def add(start: int, end: int) -> None:
        lead = _LEAD.match(text, start, end)
        if lead:
            start = lead.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))

    cursor = 0
    for m in _BREAK.finditer(text):
        punctuation = m.group()[0] in ".!?"
        if m.group() == ".":
            before = text[cursor : m.start()].split()
            if before and before[-1].lower().lstrip("([") in _ABBREVIATIONS:
                continue
        add(cursor, m.end() if punctuation else m.start())
        cursor = m.end()
    add(cursor, len(text))
    return spans


def _masked(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for pattern in (_URL, _LIST_MARKER) for m in pattern.finditer(text)]


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def _following_words(text: str, pos: int, limit: int) -> list[tuple[str, int]]:
    """Up to `limit` content words right after `pos` (the words a number counts), with their end offsets."""
    words: list[tuple[str, int]] = []
    while len(words) < limit:
        m = _NEXT_WORD.match(text, pos)
        if not m:
            break
        word = m.group("word")
        lower = word.lower()
        # After the first word, a capital or an adverb starts something else ("40 systems Acme", "3 teams quickly").
        if lower in _STOPWORDS or lower in _NOT_NOUNS or (words and (word[0].isupper() or lower.endswith("ly"))):
            break
        words.append((word, m.end()))
        pos = m.end()
    return words


def _date_value(m: re.Match[str]) -> list[str]:
    """The ISO value of a date match (empty if it is no real date)."""
    groups = m.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    if year is not None and not 1900 <= year <= 2199:
        return []
    if groups.get("quarter"):
        return [f"{year}-Q{groups['quarter']}"]
    raw_month = groups["month"]
    month = int(raw_month) if raw_month.isdigit() else _MONTHS[raw_month.rstrip(".").lower()]
    if not 1 <= month <= 12:
        return []
    if not groups.get("day"):
        return [f"{year}-{month:02d}"]
    day = int(groups["day"])
    try:
        date(year or 2000, month, day)  # 2000 is a leap year, so "February 29" alone is valid
    except ValueError:
        return []
    return [f"{year}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"]


def _candidate_spans(text: str, products: Sequence[str]) -> list[_Span]:
    found: list[_Span] = []
    for pattern in _PRICES:
        for m in pattern.finditer(text):
            amount = _decimal(m.group("amt"))
            groups = m.groupdict()
            if groups.get("code"):
                currency = groups["code"]
            elif groups.get("sym"):
                currency = _CURRENCY_SYMBOLS[groups["sym"]]
            else:
                currency = "EUR" if groups["word"].lower().startswith("euro") else "USD"
            if amount is not None:
                found.append(_Span("price", m.start(), m.end(), f"{currency} {_money(amount)}"))
    for pattern in _PERCENTS:
        for m in pattern.finditer(text):
            percent = _matched_number(m)
            if percent is not None:
                found.append(_Span("percentage", m.start(), m.end(), f"{_plain(percent)}%"))
    for pattern in _DATES:
        for m in pattern.finditer(text):
            found.extend(_Span("date", m.start(), m.end(), iso) for iso in _date_value(m))
    for name in sorted(products, key=len, reverse=True):
        for m in _name_pattern(name).finditer(text):
            found.append(_Span("product", m.start(), m.end(), name))
    for m in _NUMBER.finditer(text):
        words = _following_words(text, m.end(), _NUMBER_WORDS)
        number = _decimal(m.group("num"))
        if words and number is not None:
            found.append(_Span("number", m.start(), words[-1][1], _plain(number)))
    return found


def _resolve(text: str, spans: list[_Span]) -> list[_Span]:
    """Keep one claim per stretch of text: by kind priority (price, percentage, date, product, number),
    then the longer span; anything touching a URL, an email address or a list marker is dropped."""
    masked = _masked(text)
    kept: list[_Span] = []
    for span in sorted(spans, key=lambda s: (_PRIORITY[s.kind], s.start - s.end, s.start)):
        if _overlaps(span.start, span.end, masked):
            continue
        if any(span.start < k.end and k.start < span.end for k in kept):
            continue
        kept.append(span)
    return kept


def _mentions(text: str, names: Sequence[str], masked: Sequence[tuple[int, int]]) -> list[str]:
    """The names mentioned in `text` outside `masked`, in order of first mention."""
    first: dict[str, int] = {}
    for name in names:
        for m in _name_pattern(name).finditer(text):
            if not _overlaps(m.start(), m.end(), masked):
                first.setdefault(name, m.start())
                break
    return sorted(first, key=first.__getitem__)


def _extract(text: str, products: Sequence[str], competitors: Sequence[str]) -> list[Claim]:
    sentences = _sentence_spans(text)
    starts = [s for s, _ in sentences]

    def sentence_of(start: int, end: int) -> str:
        i = bisect.bisect_right(starts, start) - 1
        if i >= 0 and sentences[i][0] <= start and end <= sentences[i][1]:
            return text[sentences[i][0] : sentences[i][1]]
        return text[start:end]

    claims = [
        Claim(s.kind, text[s.start : s.end], s.value, s.start, s.end, sentence_of(s.start, s.end))
        for s in _resolve(text, _candidate_spans(text, products))
    ]
    if competitors:
        masked = _masked(text)
        for start, end in sentences:
            sentence = text[start:end]
            names = _mentions(sentence, competitors, [(s - start, e - start) for s, e in masked])
            if names:
                claims.append(Claim("competitor", sentence, ", ".join(names), start, end, sentence))
    # Draft order; a competitor sentence comes before the claims inside it.
    claims.sort(key=lambda c: (c.start, -c.end))
    return claims


def extract_claims(draft: str, *, products: Sequence[str] = (), competitors: Sequence[str] = ()) -> list[Claim]:
    """The factual claims of `draft`, in draft order.

    Span claims (one per stretch of text; on overlap the earlier kind below wins, then the longer span):

    - ``price``: ``$49``, ``US$49``, ``€39``, ``£29``, ``$1,200.50``, ``USD 49``, ``49 USD``, ``49 dollars``,
      ``39 euros``, with an optional period (``per seat per month``, ``/month``, ``a year``) kept in the
      span. Value ``"<ISO currency> <amount>"``; ``$`` and dollars are USD; the amount loses thousands
      separators and trailing zeros (``$1,200.00`` -> ``USD 1200``, ``€1,200.5`` -> ``EUR 1200.50``).
    - ``percentage``: ``15%``, ``15 %``, ``15 percent``, ``fifteen percent``; a discount phrase
      (``save 15%``, ``saves up to 15%``, ``15% off``, ``15% discount``) is one percentage claim whose
      span includes the discount words. Value ``"15%"`` (``15.0%`` -> ``15%``).
    - ``date``: ``2026-03-31``, ``March 31, 2026``, ``Mar. 31st 2026``, ``31 March 2026`` -> ``2026-03-31``;
      ``March 2026``, ``2026-03`` -> ``2026-03``; ``Q2 2026``, ``2026 Q2`` -> ``2026-Q2``; a day without a
      year (``March 31``) -> ``--03-31``. Month names must be capitalised; weekday names, bare years and
      slashed dates are not date claims.
    - ``product``: each of `products` mentioned (case-insensitive, whole words); value = the name as given.
    - ``number``: digits followed by one or two content words, the last being the counted noun
      (``50 seats``, ``180+ integrations``, ``180 prebuilt integrations``), optionally led by a qualifier
      that stays in the span (``over 40 systems``, ``more than 300 customers``). Value = the number without
      separators (``12,400 contacts`` -> ``12400``). Spelled-out numbers (``one year``) are not claims.

    Nothing inside a URL, an email address or a leading list marker (``1.``) is a claim.

    Sentence claims: each sentence that mentions one of `competitors` (case-insensitive, whole words) is
    a ``competitor`` claim whose text is the whole sentence and whose value is the names it mentions,
    joined by ", ". It may contain span claims; those are still reported on their own.
    """
    return _extract(draft, products, competitors)


@dataclass(frozen=True)
class _Occurrence:
    """A value stated in a passage, and what it is stated of."""

    wording: str
    scope: frozenset[str]  # stems of the words it is said of: its clause, the clauses that add to it, its headings
    conflicts: frozenset[str]  # stems said of another value of the same kind in the same sentence


@dataclass(frozen=True)
class _Indexed:
    passage_id: str
    sentences: tuple[str, ...]  # those that are not "do not claim ..." instructions
    values: dict[tuple[str, str], list[_Occurrence]]  # (kind, value) -> where the passage states it, in order
    numbers: tuple[tuple[str, frozenset[str], str], ...]  # (value, stems of the words after it, wording)


# --- what a value is said of -----------------------------------------------------------------
# A price, percentage or date belongs to a subject: "Growth — $49", "99.95% on Enterprise", "Bulk approval
# (March 2026)". A sentence is cut into clauses at punctuation and conjunctions (never inside a value); a
# clause without a value adds to the value before it ("15% on Starter and Growth"), and the clauses before
# the first value are said of every value. A heading is said of everything under it.

_BOUND_KINDS = frozenset({"price", "percentage", "date"})
_VALUE_KINDS = _BOUND_KINDS | {"number"}
_CLAUSE_BREAK = re.compile(r"[,;:|()\[\]]|\s[-–—]\s|[–—]|\b(?:and|but|while|whereas|or)\b", re.IGNORECASE)
_HEADING_LINE = re.compile(r"(?m)^(#{1,6})[ \t]+\S.*$")
_GREETING = re.compile(r"(?i)^\W*(?:hi|hello|hey|dear|good\s+(?:morning|afternoon|evening))\b")
_DEICTIC = re.compile(r"(?i)\b(?:this|next|last|every|each|per|a)\s+(?:week|month|year|quarter|day)\b")
# Words that say what a value is (its predicate), not what it is about: never a subject.
_PREDICATE_WORDS = {
    "price": "cost costs costing price priced pricing pay paid charge charged fee fees list listed lists plan plans "
    "tier seat seats user users month monthly year yearly start starts starting from come comes set run runs",
    "percentage": "percent save saves saving savings off discount get gets take takes rate rose rise rises grew "
    "grow fell fall drop dropped cut cuts reduced reduce lower higher increase increased improved improve up down",
    "date": "release released releases ship shipped ships launch launched launches available availability live "
    "went go goes gone came come arrive arrived arrives introduce introduced roll rolled start started starts "
    "begin began end ends ended date dated since sent send run ran held due expected planned schedule "
    "scheduled new added add happen happened stop stops working",
}
_GENERIC = {
    kind: frozenset(_stem(w) for w in (words + " hi hello hey dear thanks thank today tonight tomorrow now").split())
    for kind, words in _PREDICATE_WORDS.items()
}
# Share of a claim's subject (its words and names nearest the value) that the passage must say the value of.
SUBJECT_OVERLAP_MIN = 0.5
# A claim's subject is read from its own clause, then from the clauses nearest it until it has this many units.
_SUBJECT_UNITS = 3


def _blank(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> str:
    """text[start:end] with the given spans blanked out (the values themselves are not their subject)."""
    chars = list(text[start:end])
    for s, e in spans:
        for i in range(max(s, start), min(e, end)):
            chars[i - start] = " "
    return "".join(chars)


def _clauses(text: str, start: int, end: int, values: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    clauses = []
    cursor = start
    for m in _CLAUSE_BREAK.finditer(text, start, end):
        if any(s < m.end() and m.start() < e for s, e in values):
            continue
        clauses.append((cursor, m.start()))
        cursor = m.end()
    clauses.append((cursor, end))
    return clauses


def _clause_of(clauses: Sequence[tuple[int, int]], position: int) -> int:
    return next((i for i, (s, e) in enumerate(clauses) if s <= position < e), len(clauses) - 1)


def _units(piece: str, names: Sequence[str], generic: frozenset[str]) -> list[frozenset[str]]:
    """A piece of text's subject units: each name (a product, a competitor) is one unit, each other content
    word another; predicate words, numbers and greetings are none."""
    if _GREETING.match(piece):
        return []
    piece = _DEICTIC.sub(" ", piece)
    units: list[frozenset[str]] = []
    for name in names:
        if _name_pattern(name).search(piece):
            units.append(frozenset(content_words(name)))
            piece = _name_pattern(name).sub(" ", piece)
    piece = re.sub(r"['’]s\b", " ", piece)  # a name's possessive ("Acme Relay's") is no word of its own
    units += [frozenset({w}) for w in sorted(content_words(piece) - generic) if not w.isdigit()]
    return units


def _subject(text: str, claim: Claim, values: Sequence[tuple[int, int]], names: Sequence[str]) -> list[frozenset[str]]:
    """What a draft says a value of: the words and names of its own clause, and while that holds fewer than
    three, of the nearest clauses before it (then after it) that hold no other value."""
    sentence = next(((s, e) for s, e in _sentence_spans(text) if s <= claim.start and claim.end <= e), None)
    if sentence is None:
        return []
    clauses = _clauses(text, *sentence, values)
    owned = {_clause_of(clauses, s) for s, _ in values if (s, _) != (claim.start, claim.end)}
    own = _clause_of(clauses, claim.start)
    generic = _GENERIC[claim.kind]
    units = _units(_blank(text, *clauses[own], values), names, generic)
    for step in (-1, 1):
        i = own + step
        while len(units) < _SUBJECT_UNITS and 0 <= i < len(clauses) and i not in owned:
            units += _units(_blank(text, *clauses[i], values), names, generic)
            i += step
    return units


def _occurrences(text: str, claims: Sequence[Claim]) -> list[tuple[Claim, _Occurrence]]:
    """Each price, percentage and date of a passage's text, with what it is said of."""
    headings = [(m.start(), m.end(), len(m.group(1))) for m in _HEADING_LINE.finditer(text)]
    reach = []
    for i, (start, _, level) in enumerate(headings):
        later = [s for s, _, other in headings[i + 1 :] if other <= level]
        reach.append((start, later[0] if later else len(text)))
    values = [(c.start, c.end) for c in claims if c.kind in _VALUE_KINDS]
    found = []
    for claim in claims:
        if claim.kind not in _BOUND_KINDS:
            continue
        in_heading = next((r for (s, e, _), r in zip(headings, reach, strict=True) if s <= claim.start < e), None)
        if in_heading is not None:
            # a heading's value is said of the heading and of everything under it
            found.append(
                (claim, _Occurrence(claim.text, frozenset(content_words(text[slice(*in_heading)])), frozenset()))
            )
            continue
        above = " ".join(
            text[s:e] for (s, e, _), (_, until) in zip(headings, reach, strict=True) if e <= claim.start < until
        )
        sentence = next(((s, e) for s, e in _sentence_spans(text) if s <= claim.start and claim.end <= e), None)
        if sentence is None:
            found.append((claim, _Occurrence(claim.text, frozenset(content_words(above)), frozenset())))
            continue
        clauses = _clauses(text, *sentence, values)
        holders: dict[int, list[Claim]] = {}
        for other in claims:
            if other.kind in _VALUE_KINDS and sentence[0] <= other.start < sentence[1]:
                holders.setdefault(_clause_of(clauses, other.start), []).append(other)
        own = _clause_of(clauses, claim.start)
        first = min(holders)
        # what comes before the sentence's first value is said of every value ("Acme Relay commits to 99.9% on
        # Growth and 99.95% on Enterprise")
        lead_end = min(o.start for o in holders[first])
        lead = text[sentence[0] : lead_end]
        group = [i for i in range(len(clauses)) if i < first or i == own]
        i = own + 1
        while i < len(clauses) and i not in holders:
            group.append(i)
            i += 1
        scope = content_words(" ".join([above, lead, *(_blank(text, *clauses[i], values) for i in group)]))
        conflicts = set()
        for i, held in holders.items():
            if i != own and any(h.kind == claim.kind and h.value != claim.value for h in held):
                start = max(clauses[i][0], lead_end)
                conflicts |= content_words(_blank(text, start, clauses[i][1], values))
        found.append((claim, _Occurrence(claim.text, frozenset(scope), frozenset(conflicts - scope))))
    return found


def _bound(subject: Sequence[frozenset[str]], occurrence: _Occurrence) -> bool:
    """Whether a passage states its value of the claim's subject: enough of the subject is in what the value is
    said of, and no part of it is what another value of the same kind is said of in that sentence."""
    if not subject:
        return True
    if any(unit <= occurrence.conflicts for unit in subject):
        return False
    return sum(1 for unit in subject if unit <= occurrence.scope) / len(subject) >= SUBJECT_OVERLAP_MIN


def _coarser(value: str) -> list[str]:
    """Date values a passage date also vouches for: its month, its quarter, its day without the year."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", value)
    if not m:
        return []
    year, month, day = m.groups()
    out = [f"{year}-Q{(int(month) - 1) // 3 + 1}"]
    if day:
        out += [f"{year}-{month}", f"--{month}-{day}"]
    return out


def _with_headings(evidence: Evidence) -> str:
    """The passage's text below its headings, each heading a Markdown heading line of its level."""
    lines = [f"{'#' * min(level, 6)} {heading.strip()}" for level, heading in enumerate(evidence.headings, start=1)]
    return "\n\n".join([*(line for line in lines if line.strip("# ")), evidence.text])


def _index(evidence: Evidence) -> _Indexed:
    text = _with_headings(evidence)
    spans = _sentence_spans(text)
    allowed = [(s, e) for s, e in spans if not _PROHIBITION.search(text[s:e])]

    def usable(start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in allowed)

    values: dict[tuple[str, str], list[_Occurrence]] = {}
    for claim, occurrence in _occurrences(text, _extract(text, (), ())):
        if not usable(claim.start, claim.end):
            continue
        for value in [claim.value, *(_coarser(claim.value) if claim.kind == "date" else [])]:
            values.setdefault((claim.kind, value), []).append(occurrence)
    # Numbers are matched on their own, not through the extractor: "over 180 integrations" must also
    # ground a draft's "180 integrations" when the passage phrase overlaps another claim there.
    numbers: list[tuple[str, frozenset[str], str]] = []
    masked = _masked(text)
    for pattern in (_NUMBER, _SPELLED_NUMBER):
        for m in pattern.finditer(text):
            if _overlaps(m.start(), m.end(), masked) or not usable(m.start(), m.end()):
                continue
            words = _following_words(text, m.end(), _EVIDENCE_NUMBER_WORDS)
            number = _matched_number(m)
            if words and number is not None:
                stems = frozenset(_stem(w) for w, _ in words)
                numbers.append((_plain(number), stems, text[m.start() : words[-1][1]]))
    return _Indexed(evidence.passage_id, tuple(text[s:e] for s, e in allowed), values, tuple(numbers))


def _check_value(claim: Claim, index: Sequence[_Indexed], subject: Sequence[frozenset[str]] = ()) -> ClaimCheck:
    if claim.kind == "number":
        # The counted words are what follows the last digit ("over 180+ prebuilt integrations").
        counted = re.split(r"[\d+]", claim.text)[-1].strip(" -\n")
        stems = {_stem(w) for w in re.findall(r"[A-Za-z]+", counted)}
        for passage in index:
            for number, passage_stems, wording in passage.numbers:
                if number == claim.value and stems & passage_stems:
                    return ClaimCheck(claim, True, passage.passage_id, f"found '{wording}' in {passage.passage_id}")
        return ClaimCheck(claim, False, None, f"no evidence passage states {claim.value} {counted}")
    elsewhere: tuple[str, str] | None = None
    for passage in index:
        for occurrence in passage.values.get((claim.kind, claim.value), []):
            if _bound(subject, occurrence):
                return ClaimCheck(
                    claim, True, passage.passage_id, f"found '{occurrence.wording}' in {passage.passage_id}"
                )
            elsewhere = elsewhere or (occurrence.wording, passage.passage_id)
    shown = claim.value if claim.text == claim.value else f"{claim.value} (draft: '{claim.text}')"
    if elsewhere is not None:
        about = " ".join(sorted(" ".join(sorted(unit)) for unit in subject))
        return ClaimCheck(
            claim,
            False,
            None,
            f"no evidence passage states {shown} of its subject ({about}): '{elsewhere[0]}' in {elsewhere[1]} "
            "is said of something else",
        )
    return ClaimCheck(claim, False, None, f"no evidence passage states {shown}")


def _check_product(claim: Claim, index: Sequence[_Indexed]) -> ClaimCheck:
    pattern = _name_pattern(claim.value)
    for passage in index:
        for sentence in passage.sentences:
            m = pattern.search(sentence)
            if m:
                return ClaimCheck(claim, True, passage.passage_id, f"found '{m.group()}' in {passage.passage_id}")
    return ClaimCheck(claim, False, None, f"no evidence passage mentions {claim.value}")


def _check_competitor(
    claim: Claim,
    competitors: Sequence[str],
    index: Sequence[_Indexed],
    similarity: Similarity | None,
    threshold: float,
    products: Sequence[str] = (),
) -> ClaimCheck:
    names = _mentions(claim.text, competitors, _masked(claim.text))
    first_passage: str | None = None
    reasons: list[str] = []
    for name in names:
        pattern = _name_pattern(name)
        # names (the competitor's, our products') are in most candidates, so they prove nothing
        claim_words = _content_words(claim.text) - _content_words(" ".join((name, *products)))
        best = 0.0
        mentioned = False
        supported = False
        for passage in index:
            candidates = [s for s in passage.sentences if pattern.search(s)]
            if not candidates:
                continue
            mentioned = True
            # The name is in every candidate, so it proves nothing; only the rest of the sentence counts.
            overlap = [
                len(claim_words & _content_words(c)) / len(claim_words) if claim_words else 1.0 for c in candidates
            ]
            if similarity is not None:
                scores = list(similarity(claim.text, candidates))
                if len(scores) != len(candidates):
                    raise ValueError(f"similarity returned {len(scores)} scores for {len(candidates)} candidates")
                ok = [
                    s >= threshold and o >= WORD_OVERLAP_WITH_SIMILARITY for s, o in zip(scores, overlap, strict=True)
                ]
                # the best candidate is the best one that passes, else the most similar
                scores = [s + (1.0 if good else 0.0) for s, good in zip(scores, ok, strict=True)]
            else:
                scores = overlap
                ok = [s >= WORD_OVERLAP_MIN for s in scores]
            top = max(range(len(scores)), key=scores.__getitem__)
            shown = scores[top] - (1.0 if ok[top] and similarity is not None else 0.0)
            best = max(best, shown)
            if ok[top]:
                measure = (
                    f"similarity {shown:.2f}, word overlap {overlap[top]:.0%}"
                    if similarity is not None
                    else f"word overlap {shown:.0%}"
                )
                reasons.append(f"found '{candidates[top]}' in {passage.passage_id} ({measure})")
                first_passage = first_passage or passage.passage_id
                supported = True
                break
        if not supported:
            if not mentioned:
                reason = f"no evidence passage mentions {name}"
            elif similarity is not None:
                reason = (
                    f"no evidence sentence about {name} says this (best similarity {best:.2f}; needs "
                    f"{threshold:.2f} and {WORD_OVERLAP_WITH_SIMILARITY:.0%} of the claim's words)"
                )
            else:
                reason = (
                    f"no evidence sentence about {name} says this "
                    f"(best word overlap {best:.0%} < {WORD_OVERLAP_MIN:.0%})"
                )
            return ClaimCheck(claim, False, None, reason)
    return ClaimCheck(claim, True, first_passage, "; ".join(reasons))


def check_claims(
    draft: str,
    evidence: Sequence[Evidence],
    *,
    products: Sequence[str] = (),
    competitors: Sequence[str] = (),
    similarity: Similarity | None = None,
    threshold: float = 0.6,
) -> list[ClaimCheck]:
    """Check each claim of `draft` (see `extract_claims`) against `evidence`, in draft order.

    A claim's ``passage_id`` is the first passage, in the order given, that supports it:

    - price, percentage, date: the passage states the same normalised value (claims are extracted from
      the passage with the same rules), and states it of the claim's subject. A passage date also supports
      its coarser forms: "March 31, 2026" supports "March 2026", "Q1 2026" and "March 31". A discounted
      percentage ("25% off") needs a passage stating 25%, like any other percentage.
      The subject is what the draft says the value of: the names and content words of the value's clause
      (clauses end at punctuation and at and/but/or/while), and while it holds fewer than three, of the
      nearest clauses around it that hold no other value; predicate words ("released", "costs", "saves") are no
      subject. The passage must say the value of at least half of it — in the value's own clause, a clause
      adding to it ("15% on Starter and Growth"), the words before the sentence's first value, or a heading
      above it (a value in a heading is said of everything under the heading) — and none of it may be what
      another value of the same kind is said of in that sentence ("99.9% on Growth and 99.95% on
      Enterprise" does not support "99.9% on Enterprise"). So "Bulk approval shipped in May 2026" is not
      supported by release notes where May 2026 is the loop step's release and bulk approval's is March.
    - number: the passage has the same number (digits, or spelled out: "seven years" grounds "7 years")
      followed, within three content words, by one of the claim's words with the same stem ("180+
      integrations" ~ "over 180 prebuilt integrations"). Qualifiers (over, about, +) are not compared.
    - product: the passage mentions the product.
    - competitor: for every competitor the sentence names, some passage has sentences naming it, and the
      best of them passes: with `similarity`, ``similarity(claim sentence, those sentences)`` (one score
      per sentence) reaches `threshold`; without it, at least 60% of the claim sentence's content words
      (lowercased, stopwords and the competitor's name removed, crudely stemmed) occur in one sentence.

    Evidence sentences that tell the writer what not to say ("Do not say Flowtide is insecure", "Never
    claim a customer left Opsly") support nothing: they state the very claim they forbid.
    """
    claims = extract_claims(draft, products=products, competitors=competitors)
    if not claims:
        return []
    index = [_index(e) for e in evidence]
    values = [(c.start, c.end) for c in claims if c.kind in _VALUE_KINDS]
    names = [*products, *competitors]
    checks: list[ClaimCheck] = []
    for claim in claims:
        if not evidence:
            checks.append(ClaimCheck(claim, False, None, "no evidence passages given"))
        elif claim.kind == "product":
            checks.append(_check_product(claim, index))
        elif claim.kind == "competitor":
            checks.append(_check_competitor(claim, competitors, index, similarity, threshold, products))
        elif claim.kind in _BOUND_KINDS:
            checks.append(_check_value(claim, index, _subject(draft, claim, values, names)))
        else:
            checks.append(_check_value(claim, index))
    return checks

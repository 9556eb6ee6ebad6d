"""What text and numbers every Herald store can hold, and the check every contract and edge applies.

PostgreSQL's text and jsonb refuse the NUL character and lone UTF-16 surrogates (`\\ud800` … `\\udfff` without
their pair); its bigint stops at 2**63 - 1; and a string without a bound can fill a topic. A value like that
is refused where it enters — a 4xx at the HTTP edge, a validation error (so a dead letter) on a topic — so no
store downstream ever meets it. Contracts declare these limits (`Contract` in `contracts`), so every producer
is held to them, not only ingest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from pydantic import BaseModel

#: the longest string a contract field holds unless it declares its own `max_length`
MAX_TEXT = 10_000
#: the range of an integer every store holds (PostgreSQL bigint)
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
#: how deep a JSON document or a MIME message may nest at an edge
MAX_DEPTH = 32
#: the years a time may fall in: far enough from the ends of the calendar that a time zone or a TTL added to
#: it stays a time (year 1 or 9999 with an offset overflows Python's datetime and PostgreSQL's timestamptz)
FIRST_YEAR, LAST_YEAR = 1900, 9000

#: the rule in words, for the JSON Schemas every contract publishes
TEXT_RULE = (
    "Strings hold no NUL (U+0000) and no unpaired surrogate (U+D800-U+DFFF), and at most 10000 characters unless "
    "a field says otherwise; integers fit in a signed 64-bit integer; numbers are never NaN or Infinity; times and "
    "dates fall in the years 1900 to 9000."
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why no store can hold `text`, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"an unpaired surrogate (U+{ord(char):04X})"
    return f"holds {what} at position {found.start()}"


def storable(text: str, limit: int = MAX_TEXT) -> str:
    """`text` as every store can hold it: what none can replaced by U+FFFD, cut to `limit` characters. For text
    Herald writes about something it refused (a reason quoting the input), never for the input itself."""
    return _UNSTORABLE.sub("\ufffd", text[:limit])


def value_problem(
    value: Any, *, max_depth: int = MAX_DEPTH, max_text: int | None = None, _depth: int = 0
) -> str | None:
    """Why no store can hold `value` (a string, number or JSON-like structure), or None. Strings inside a
    structure may be at most `MAX_TEXT` long (a top-level string: `max_text`, when given); a pydantic model is
    left to its own validation."""
    if isinstance(value, str):
        if max_text is not None and len(value) > max_text:
            return f"longer than {max_text} characters"
        return text_problem(value)
    if isinstance(value, date):  # a datetime too
        return None if FIRST_YEAR <= value.year <= LAST_YEAR else f"the year {value.year} is out of range"
    if isinstance(value, bool | float) or value is None or isinstance(value, BaseModel):
        return None
    if isinstance(value, int):
        return None if MIN_INT <= value <= MAX_INT else f"the number {str(value)[:20]}… is out of range"
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        return None
    if _depth >= max_depth:
        return f"nests deeper than {max_depth} levels"
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        key_problem = value_problem(key, max_text=MAX_TEXT) if isinstance(value, Mapping) else None
        problem = key_problem or value_problem(item, max_depth=max_depth, max_text=MAX_TEXT, _depth=_depth + 1)
        if problem:
            where = str(key)[:40] if text_problem(str(key)) is None else "a key"
            return f"{where}: {problem}"
    return None


class JsonRefused(ValueError):
    """JSON an edge will not take: `error` is the code answered (`malformed_json`, `unstorable_value`)."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error, self.detail = error, detail


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deep a JSON-like value nests (counted up to `limit` + 1; walked without recursion)."""
    deepest, pending = 0, [(value, 0)]
    while pending and deepest <= limit:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            pending += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list | tuple):
            pending += [(v, depth + 1) for v in item]
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def read_json(data: str | bytes, *, max_depth: int = MAX_DEPTH, storable_only: bool = True) -> Any:
    """Parse JSON an edge received, refusing (`JsonRefused`) what is not JSON, nests deeper than `max_depth`,
    or holds NaN or Infinity — and, with `storable_only`, a value no store can hold (NUL, a lone surrogate,
    an integer past bigint); without it the caller refuses those itself, item by item."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError as exc:
        raise JsonRefused("malformed_json", f"the JSON nests deeper than {max_depth} levels") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a constant
        raise JsonRefused("malformed_json", str(exc)[:500]) from exc
    if depth_of(value, max_depth) > max_depth:
        raise JsonRefused("malformed_json", f"the JSON nests deeper than {max_depth} levels")
    problem = value_problem(value, max_depth=max_depth) if storable_only else None
    if problem is not None:
        raise JsonRefused("unstorable_value", problem)
    return value

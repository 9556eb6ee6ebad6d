"""What reading any raw inbound message needs, for bounce reports and replies alike. Pure: stdlib `email`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from herald_core.text import MAX_DEPTH


def nesting(message: Message) -> int:
    """How deep the message's parts nest (walked without recursion: a bomb has thousands of levels)."""
    deepest, pending = 0, [(message, 1)]
    while pending:
        part, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        payload = part.get_payload() if part.is_multipart() else None
        pending += [(p, depth + 1) for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    return deepest


def header_date(value: str | None, now: datetime) -> datetime | None:
    """A date field in UTC (never later than `now`: a sender's clock is not ours to trust), or None."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return min(moment, now)

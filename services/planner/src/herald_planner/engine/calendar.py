"""Business days in a time zone: "wait 3 business days" from a Friday afternoon in Berlin ends on Wednesday
afternoon in Berlin, whatever UTC says and across a change of summer time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from herald_core.tenants import zone_named


def add_business_days(start: datetime, days: int, zone_name: str | None, fallback_zone: str = "UTC") -> datetime:
    """`start` moved on by `days` weekdays (Monday to Friday) at the same wall-clock time in the zone (the
    contact's, else the fallback, else UTC). From a weekend the count starts on Monday."""
    zone = zone_named(zone_name) or zone_named(fallback_zone) or UTC
    local = start.astimezone(zone).replace(tzinfo=None)  # wall-clock arithmetic, then back to the zone
    counted = 0
    while counted < days:
        local += timedelta(days=1)
        if local.weekday() < 5:
            counted += 1
    return local.replace(tzinfo=zone).astimezone(UTC)

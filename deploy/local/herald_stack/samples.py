"""Valid inputs for each tool with side effects, one contact at a time, shared by the tests and the executor's
benchmark (both drive the real executor with approvals of every tool)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# far enough ahead that no calendar of the stack is booked then; the n-th meeting takes the n-th half hour
FIRST_MEETING_SLOT = datetime(2032, 1, 5, 14, 0, tzinfo=UTC)


def tool_input(tool: str, contact_id: str, n: int = 0) -> dict[str, Any]:
    """A valid input of the tool for one contact (the n-th of a series: meetings in consecutive free slots)."""
    address = f"{contact_id}@buyers.example"
    match tool:
        case "send_email":
            return {"to": address, "subject": f"Note {n}", "body_text": "A short note."}
        case "update_crm_record":
            return {
                "contact_id": contact_id,
                "properties": {"lifecycle_stage": "opportunity", "next_step": f"call {n}"},
            }
        case "schedule_meeting":
            return {
                "contact_id": contact_id,
                "attendee_email": address,
                "title": f"Intro {n}",
                "starts_at": (FIRST_MEETING_SLOT + timedelta(minutes=30 * n)).isoformat(),
                "duration_minutes": 30,
            }
        case "generate_image":
            return {"template": "square", "headline": f"Launch week, day {n}"}
        case "fetch_campaign_stats":
            return {"campaign_id": "spring-launch"}
        case "create_contact":
            return {"email": f"referral-{n}@{address.split('@')[1]}", "referred_by": contact_id}
        case "find_free_slots":
            return {"duration_minutes": 30, "business_days": 5}
    raise ValueError(f"no sample input for {tool}")

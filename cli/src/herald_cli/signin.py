"""Who the operator is to Herald's services: their identity provider's token, from `HERALD_TOKEN` or the file
`HERALD_TOKEN_FILE` names (on the local stack, `herald-stack token --as … --group …` mints one)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx


def person_headers() -> dict[str, str]:
    """The Authorization header for the review service's API, when a token is configured."""
    token = os.environ.get("HERALD_TOKEN", "").strip()
    path = os.environ.get("HERALD_TOKEN_FILE", "").strip()
    if not token and path:
        token = Path(path).read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def refusal(response: httpx.Response) -> str | None:
    """What to tell the operator when the service would not answer them (401 / 403), else None."""
    if response.status_code not in (401, 403):
        return None
    try:
        detail = response.json().get("detail", {})
        reason = detail.get("detail") if isinstance(detail, dict) else str(detail)
    except ValueError:
        reason = response.text[:300]
    hint = " (set HERALD_TOKEN to your sign-in token)" if response.status_code == 401 else ""
    return f"the review service refused you: {reason}{hint}"

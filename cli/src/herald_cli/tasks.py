"""`herald task --tenant T --brief brief.yaml [--wait]` (a defined campaign task) or `--text "…"` (free text):
submit it to the planner (`POST /v1/tasks`), print the task id, and with `--wait` the batch once proposed.

Exit codes: 0 accepted (with `--wait`: its batch proposed), 2 refused (the planner's reason printed; nothing was
done), 1 the planner unreachable, or the task failed or not proposed in time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:1000] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:1000]
    detail = body.get("detail")
    if isinstance(detail, list):  # validation errors, each naming its field
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return f"{body.get('error', 'refused')}: {detail}"


def read_brief(path: Path) -> dict[str, Any]:
    """The brief file (YAML or JSON) as a mapping; `ValueError` with the reason."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a brief is a mapping (campaign_id, topic, goal, segment, variants)")
    return loaded


def submit(
    planner_url: str,
    request: dict[str, Any],
    *,
    token: str | None,
    wait: bool,
    timeout: float,
    out: Console,
    err: Console,
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=planner_url.rstrip("/"), timeout=30, headers=headers) as client:
        try:
            answer = client.post("/v1/tasks", json=request)
        except httpx.HTTPError as exc:
            err.print(f"the planner at {planner_url} did not answer: {exc}", highlight=False, markup=False)
            return 1
        if 400 <= answer.status_code < 500:
            err.print(f"refused: {_reason(answer)}", highlight=False, markup=False)
            return 2
        if not answer.is_success:
            err.print(f"the planner could not take the task now: {_reason(answer)}", highlight=False, markup=False)
            return 1
        accepted = answer.json()
        task_id = accepted["task_id"]
        out.print(task_id, highlight=False)
        err.print(
            f"accepted: campaign {accepted['campaign_id']}, {accepted['audience']} contact(s), "
            f"variants {', '.join(accepted['variants'])}",
            highlight=False,
            markup=False,
        )
        if not wait:
            return 0
        return _wait(client, request["tenant"], task_id, timeout, out, err)


def _wait(client: httpx.Client, tenant: str, task_id: str, timeout: float, out: Console, err: Console) -> int:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/tasks/{task_id}", params={"tenant": tenant})
        if response.is_success:
            task = response.json()
            if task["state"] in ("proposed", "done"):
                variants = ", ".join(f"{name} {n}" for name, n in sorted(task["variants"].items()))
                out.print(
                    f"batch proposed: {task['proposed']} send(s) waiting in review as one batch ({variants})",
                    highlight=False,
                    markup=False,
                )
                for entry in task["journal"]:
                    out.print(f"  {entry['state']}: {entry.get('note', '')}", highlight=False, markup=False)
                return 0
            if task["state"] in ("failed", "refused"):
                err.print(f"task {task['state']}: {task.get('reason')}", highlight=False, markup=False)
                return 1
        time.sleep(0.5)
    err.print(f"not proposed within {timeout:.0f}s (state: {task.get('state', 'unknown')})", highlight=False)
    return 1

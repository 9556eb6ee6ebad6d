"""“Why did it do that?” — one action's story, rebuilt from the audit records of its chain alone (pure).

The chain is every audit record with the action's correlation id: the upstream event that started
it, the plan (query, evidence passages, recalled memories), the proposal, each guard decision with
its policy version and every rule it evaluated (with the rule's inputs and result in words), the
review request and the reviewer's decision, what the executor did, and what a person found if it was in doubt.
"""

from __future__ import annotations

from typing import Any

from herald_core.contracts import ActionProposed

UPSTREAM = ("herald.contact.created.v1", "herald.contact.updated.v1", "herald.message.replied.v1")
DECISIONS = (
    "herald.action.approved.v1",
    "herald.action.blocked.v1",
    "herald.action.escalated.v1",
    "herald.action.deferred.v1",
)
EXECUTION = ("herald.action.executed.v1", "herald.action.refused.v1", "herald.execution.resolved.v1")


def _action_of(body: Any) -> str | None:
    if not isinstance(body, dict):  # any JSON a record held, or only its hash: no action named
        return None
    action = body.get("action") if isinstance(body.get("action"), dict) else {}
    return body.get("action_id") or action.get("action_id")


def explain(records: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    """The explanation of `action_id` from its chain's index rows (oldest first), or None if it is not there."""
    seen: set[str] = set()
    chain = []
    for record in records:
        if record["message_id"] not in seen:  # a message on two topics is one step
            seen.add(record["message_id"])
            chain.append(record)
    mine = [r for r in chain if _action_of(r["body"] or {}) == action_id]
    if not mine:
        return None
    proposal = next((r["body"] for r in mine if r["type"] == "herald.action.proposed.v1"), None)
    proposed = ActionProposed.model_validate(proposal) if proposal is not None else None
    workflow_id = (proposal or {}).get("workflow_id")
    upstream = next((r for r in chain if r["type"] in UPSTREAM), None)
    plans = [
        r
        for r in chain
        if r["type"] == "herald.plan.created.v1"
        and isinstance(r["body"], dict)
        and r["body"].get("workflow_id") == workflow_id
    ]
    proposed_record = next((r for r in mine if r["type"] == "herald.action.proposed.v1"), None)
    # the plan this proposal came of (a run of several steps makes several plans); else the run's first
    own_plan = next(
        (r for r in plans if proposed_record and r["message_id"] == proposed_record.get("causation_id")), None
    )
    plan = (own_plan or (plans[0] if plans else {})).get("body")
    decisions = [_decision(r) for r in mine if r["type"] in DECISIONS]
    requested = next((r["body"] for r in mine if r["type"] == "herald.review.requested.v1"), None)
    decided = next((r["body"] for r in mine if r["type"] == "herald.review.decided.v1"), None)
    executed = [r for r in mine if r["type"] in EXECUTION]
    return {
        "action_id": action_id,
        "tenant": mine[0]["tenant"],
        "correlation_id": mine[0]["correlation_id"],
        # the index's contact column (the contact's hash once erased): what the audit is searched by
        "contact_id": next((r["contact_id"] for r in mine if r.get("contact_id")), None),
        "outcome": _outcome(decisions, decided, executed),
        "upstream": None
        if upstream is None
        else {"type": upstream["type"], "at": upstream["occurred_at"], "source_topic": upstream["topic"]},
        "plan": None
        if plan is None
        else {
            "planner": plan.get("planner"),
            "query": plan.get("query"),
            "evidence": [
                {"chunk_id": e["chunk_id"], "title": e["title"], "quote": e["quote"][:400]} for e in plan["evidence"]
            ],
            "memories": [{"kind": m["kind"], "text": m["text"][:400]} for m in plan.get("memories", [])],
        },
        "proposal": None
        if proposal is None or proposed is None
        else {
            "tool": proposal["tool"],
            "to": proposed.recipient,
            "subject": proposed.text[0],
            "body": proposed.text[1],
            "input": proposal["input"],
            "confidence": proposal["confidence"],
            "rationale": proposal["rationale"],
        },
        "decisions": decisions,
        "review": None
        if requested is None
        else {
            "review_id": requested["review_id"],
            "why": requested["reason"],
            "reviewer": (decided or {}).get("reviewer"),
            "decision": (decided or {}).get("decision"),
            "reason": (decided or {}).get("reason"),
            "edit": (decided or {}).get("edit"),
        },
        "execution": [_execution(r) for r in executed],
        "workflow": None if workflow_id is None else _workflow(chain, workflow_id),
        # a step whose record the index could not keep as it is says what was done (its body may be only a hash)
        "steps": [
            {"at": r["occurred_at"], "type": r["type"], "topic": r["topic"]}
            | ({"note": r["body_note"]} if r.get("body_note") else {})
            for r in chain
        ],
    }


def _workflow(chain: list[dict[str, Any]], workflow_id: str) -> dict[str, Any]:
    """The run the action belongs to, step by step: each action it proposed (every touch, every attempt after a
    refusal) with what became of it, each timer that fired, and why the run ended."""
    steps: list[dict[str, Any]] = []
    actions: dict[str, dict[str, Any]] = {}
    name = None
    for record in chain:
        body = record["body"] if isinstance(record["body"], dict) else {}
        kind = record["type"]
        if kind == "herald.plan.created.v1" and body.get("workflow_id") == workflow_id:
            name = body.get("workflow") or name
        elif kind == "herald.action.proposed.v1" and body.get("workflow_id") == workflow_id:
            proposed = ActionProposed.model_validate(body)
            step = {
                "at": record["occurred_at"],
                "kind": "proposed",
                "action_id": proposed.action_id,
                "what": proposed.describe(),
                "drafted_by": proposed.drafted_by,
                "rationale": proposed.rationale[:300],
                "outcome": "not decided yet",
            }
            actions[proposed.action_id] = step
            steps.append(step)
        elif kind in DECISIONS or kind in EXECUTION:
            step = actions.get(str(_action_of(body)))
            if step is not None:  # the latest word on the action is its outcome
                if kind in EXECUTION:
                    status = _execution(record)["status"]
                    step["outcome"] = status if kind == "herald.execution.resolved.v1" else f"executed: {status}"
                else:
                    decision = _decision(record)
                    step["outcome"] = (
                        f"blocked by {decision['rule']}: {decision['reason']}"
                        if decision["decision"] == "blocked"
                        else decision["decision"]
                    )
        elif kind == "herald.workflow.timer-fired.v1" and body.get("workflow_id") == workflow_id:
            name = body.get("workflow") or name
            steps.append(
                {"at": record["occurred_at"], "kind": "timer", "what": f"{body['name']} (due {body['due_at']})"}
            )
        elif kind == "herald.workflow.ended.v1" and body.get("workflow_id") == workflow_id:
            name = body.get("workflow") or name
            steps.append({"at": record["occurred_at"], "kind": "ended", "what": f"{body['state']}: {body['reason']}"})
    return {"workflow_id": workflow_id, "workflow": name, "steps": steps}


def _execution(record: dict[str, Any]) -> dict[str, Any]:
    """What the executor did, or what a person found when it was in doubt."""
    body = record["body"]
    if record["type"] == "herald.execution.resolved.v1":
        status = f"resolved: {body['outcome']} (checked by {body['reviewer']})"
        detail = body.get("reason")
    else:
        status = body.get("status") or f"refused: {body.get('reason')}"
        detail = body.get("error") or body.get("detail")
    return {
        "type": record["type"],
        "status": status,
        "result": body.get("result"),
        "detail": detail,
        "at": record["occurred_at"],
    }


def _decision(record: dict[str, Any]) -> dict[str, Any]:
    body = record["body"]
    kind = record["type"].split(".")[2]  # approved | blocked | escalated
    approval = body.get("approval") or {}
    by_reviewer = str(approval.get("approved_by", "")).startswith("review:")
    return {
        "decision": kind,
        "at": record["occurred_at"],
        "stage": body.get("stage") or ("review" if by_reviewer else "proposal"),  # older approvals had no stage
        "policy_version": body.get("policy_version") or approval.get("policy_version"),
        "rule": body.get("rule"),
        "reason": body.get("reason"),
        "approved_by": approval.get("approved_by"),
        "release_at": body.get("release_at"),
        "rules": body.get("rules", []),
    }


def _outcome(decisions: list[dict[str, Any]], decided: dict[str, Any] | None, executed: list[dict[str, Any]]) -> str:
    if executed:
        last = executed[-1]["body"]
        if executed[-1]["type"] == "herald.execution.resolved.v1":
            return f"executed: in_doubt, resolved: {last['outcome']}"
        return f"executed: {last['status']}" if "status" in last else f"refused: {last.get('reason')}"
    if not decisions:
        return "proposed, not decided yet"
    last = decisions[-1]
    if last["decision"] == "escalated" and decided is None:
        return "awaiting review"
    if last["decision"] == "deferred":
        return f"deferred until {last['release_at']}"
    return {"approved": "approved, not executed yet", "blocked": f"blocked by {last['rule']}"}.get(
        last["decision"], last["decision"]
    )


def render(explanation: dict[str, Any]) -> str:
    """The explanation as text for a person reading a terminal."""
    e = explanation
    lines = [f"action {e['action_id']} (tenant {e['tenant']}): {e['outcome']}"]
    if e["upstream"]:
        lines.append(f"  started by {e['upstream']['type']} at {e['upstream']['at']}")
    if e["plan"]:
        plan = e["plan"]
        lines.append(f"  planned by the {plan['planner']} from “{plan['query']}”:")
        lines += [f"    evidence {p['chunk_id']} — {p['quote'][:120]}" for p in plan["evidence"]]
        lines += [f"    remembered ({m['kind']}) {m['text'][:120]}" for m in plan["memories"]]
    if e["proposal"]:
        p = e["proposal"]
        lines.append(f"  proposed {p['tool']} to {p['to']}: “{p['subject']}” (confidence {p['confidence']})")
        lines.append(f"    rationale: {p['rationale'][:300]}")
    for d in e["decisions"]:
        lines.append(
            f"  {d['decision']} at {d['stage']} under policy {d['policy_version']}: {d['reason'] or d['approved_by']}"
        )
        lines += [f"    {h['outcome']:8} {h['rule']}: {h['detail'][:160]}" for h in d["rules"]]
    if e["review"]:
        r = e["review"]
        lines.append(
            f"  review {r['review_id']} because {r['why']}: {r['decision'] or 'pending'} by {r['reviewer'] or '-'}"
            + (f" — {r['reason']}" if r["reason"] else "")
        )
        edit = r.get("edit") or {}
        if edit.get("subject"):
            lines.append(f"    edited by the reviewer: subject “{edit['subject']}”")
        if edit.get("body_text"):
            lines.append(f"    edited by the reviewer: body “{edit['body_text'][:160]}”")
    for x in e["execution"]:
        lines.append(f"  executor: {x['status']} {x['detail'] or ''} {x['result'] or ''}".rstrip())
    workflow = e.get("workflow")
    if workflow and len(workflow["steps"]) > 1:  # a run of one step has been told above
        lines.append(f"  the run {workflow['workflow_id']} ({workflow['workflow'] or 'workflow'}), step by step:")
        for step in workflow["steps"]:
            mark = " ◀ this action" if step.get("action_id") == e["action_id"] else ""
            if step["kind"] == "proposed":
                lines.append(
                    f"    {step['at']} proposed {step['what']} ({step['drafted_by']}): {step['outcome']}{mark}"
                )
            else:
                lines.append(f"    {step['at']} {step['kind']}: {step['what']}")
    return "\n".join(lines)

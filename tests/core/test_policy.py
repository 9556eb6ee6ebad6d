"""Policy as code: the shipped policy's YAML cases (each rule kind allowing and blocking the right
actions), bad policy files refused with line numbers, conditions that fail closed, and which
publications may replace a live policy."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from herald_core.contracts import PolicyPublished
from herald_core.policy import (
    BreakerReading,
    PolicyError,
    PolicyRefused,
    admit,
    default_policy,
    evaluate,
    limits_for,
    load_policy,
)
from herald_core.policy_cases import PolicyCases, load_cases, run_cases
from herald_core.tenants import TenantConfig
from support import email_action

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "acme" / "policy"
POLICY = load_policy((SAMPLES / "policy.yaml").read_text())
CASES = load_cases((SAMPLES / "tests.yaml").read_text())


@pytest.mark.parametrize("case", CASES.cases, ids=[c.name for c in CASES.cases])
def test_the_shipped_policy_decides_each_case_as_written(case) -> None:  # type: ignore[no-untyped-def]
    (result,) = run_cases(POLICY, PolicyCases(tenant=CASES.tenant, cases=(case,)))
    assert result.passed, result.failure


def test_every_rule_of_the_shipped_policy_fires_in_some_case() -> None:
    fired = {h.rule for r in run_cases(POLICY, CASES) if r.verdict for h in r.verdict.rules if h.outcome != "pass"}
    assert {rule.id for rule in POLICY.document.rules} <= fired


def test_a_case_that_expects_the_wrong_decision_fails() -> None:
    wrong = load_cases("cases:\n  - {name: 'a VIP is approved?', action: {contact: {vip: true}}, expect: approve}\n")
    (result,) = run_cases(POLICY, wrong)
    assert not result.passed and "expected approve, got escalate" in (result.failure or "")


BAD = """\
tenant: acme
version: 0
rules:
  - id: escalation.unsure
    when: action.confidense < 0.6
    then: escalate
  - id: Bad Id
    when: "1 +"
  - id: content.banned
    kind: banned_phrases
    phrases: []
  - id: content.number
    when: action.confidence
"""


def test_a_bad_policy_lists_every_problem_with_its_line() -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(BAD)
    problems = {(p.line, p.path): p.message for p in refused.value.problems}
    assert "greater than or equal to 1" in problems[(2, "version")]
    assert "confidense" in problems[(5, "rules.0.when")]
    assert "pattern" in problems[(7, "rules.1.id")]
    assert "Syntax error" in problems[(8, "rules.1.when")]
    assert "at least 1 item" in problems[(11, "rules.2.phrases")]
    assert "true or false" in problems[(13, "rules.3.when")]


def test_a_policy_cannot_redefine_a_built_in_rule_or_repeat_an_id() -> None:
    with pytest.raises(PolicyError, match="built in"):
        load_policy("tenant: acme\nversion: 1\nrules:\n  - {id: consent.opt_out, when: 'false'}\n")
    with pytest.raises(PolicyError, match="appears twice"):
        load_policy("tenant: acme\nversion: 1\nrules:\n  - {id: a.b, when: 'false'}\n  - {id: a.b, when: 'true'}\n")


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("tenant: acme\nversion: [1\n", 3, "expected"),
        ("- just\n- a list\n", 1, "a mapping"),
        ("tenant: acme\nversion: 1\nrules:\n  - id: x.y\n    kind: nope\n", 4, "does not match any of the expected"),
        ("tenant: acme\nversion: 1\nsurprise: true\n", 3, "Extra inputs"),
    ],
)
def test_unreadable_policies_are_refused_with_a_line(source: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(source)
    assert any(p.line == line and words in p.message for p in refused.value.problems), refused.value.problems


TENANT = TenantConfig.model_validate(
    {
        "tenant_id": "acme",
        "name": "Acme Relay",
        "sender": {"name": "Maya", "address": "maya@acmerelay.example"},
        "unsubscribe_url": "https://acmerelay.example/unsubscribe",
        "escalation": {"vip": True, "deal_value_minor_at_least": 5_000_000},
    }
)


def test_a_condition_that_cannot_be_evaluated_fails_closed() -> None:
    policy = load_policy(
        "tenant: acme\nversion: 1\nrules:\n  - id: content.ratio\n"
        '    when: "action.contact.deal_value_minor > 0 && 100 / (action.contact.deal_value_minor - 7) > 1"\n'
    )
    cases = load_cases("cases:\n  - name: n\n    action: {contact: {deal_value_minor: 7}}\n    expect: block\n")
    (result,) = run_cases(policy, cases)
    assert result.passed, result.failure
    assert result.verdict is not None and "could not evaluate" in result.verdict.reason


def test_a_tenant_without_a_published_policy_gets_its_configured_escalations() -> None:
    policy = default_policy(TENANT)
    assert [r.id for r in policy.document.rules] == ["escalation.vip", "escalation.deal_value"]
    cases = load_cases(
        "cases:\n"
        "  - {name: vip, action: {contact: {vip: true}}, expect: escalate, rules: [escalation.vip]}\n"
        "  - {name: deal, action: {contact: {deal_value_minor: 5000000}}, expect: escalate}\n"
        "  - {name: plain, expect: approve}\n"
    )
    assert all(r.passed for r in run_cases(policy, cases))


def published(text: str, **over: object) -> PolicyPublished:
    policy = load_policy(text)
    fields = {
        "tenant": policy.tenant,
        "version": policy.document.version,
        "source": text,
        "sha256": hashlib.sha256(str(over.get("source", text)).encode()).hexdigest(),
        "published_by": "compliance@acme.example",
        **over,
    }
    return PolicyPublished.model_validate(fields)


V1 = "tenant: acme\nversion: 1\nrules: []\n"
V2 = "tenant: acme\nversion: 2\nrules:\n  - {id: escalation.unsure, when: action.confidence < 0.7, then: escalate}\n"


def test_only_a_higher_version_of_the_tenants_own_policy_replaces_the_live_one() -> None:
    v1 = admit(published(V1), "acme", None)
    assert v1 is not None and v1.version.startswith("v1-")
    v2 = admit(published(V2), "acme", v1)
    assert v2 is not None and v2.version.startswith("v2-") and v2.version != v1.version
    assert admit(published(V2), "acme", v2) is None  # the same one read again
    with pytest.raises(PolicyRefused, match="not above the live version 2"):
        admit(published(V1.replace("rules: []", "description: older\nrules: []")), "acme", v2)
    with pytest.raises(PolicyRefused, match="envelope tenant"):
        admit(published(V1), "globex", None)
    with pytest.raises(PolicyRefused, match="sha256"):
        admit(published(V1, sha256="0" * 64), "acme", None)
    with pytest.raises(PolicyRefused, match="line"):
        admit(published(V1, source="tenant: acme\nversion: 1\nrules: [{id: x}]\n"), "acme", None)


def test_decisions_name_the_policy_version_they_were_made_under() -> None:
    from herald_core.contracts import ActionProposed
    from herald_core.policy_cases import SAMPLE_ACTION

    action = ActionProposed.model_validate({**SAMPLE_ACTION, "tenant": "acme", "confidence": 0.65})
    v2 = load_policy(V2)
    verdict = evaluate(v2, action, TENANT, stage="proposal", suppression_reason=None)
    assert verdict.outcome == "escalate" and verdict.policy_version == v2.version
    assert [h.rule for h in verdict.rules] == [
        "consent.opt_out",
        "content.recipient_is_contact",
        "content.sender_and_unsubscribe",
        "escalation.unsure",
    ]


WINDOWED = """\
tenant: acme
version: 1
send_window: {start: "08:00", end: "18:00", days: [mon, tue, wed, thu, fri]}
rules:
  - {id: escalation.vip, when: action.contact.vip, then: escalate}
"""


@pytest.mark.parametrize(
    ("at", "timezone", "expect", "release"),
    [
        # Wednesday 2026-11-25 15:00 UTC is 09:00 in Chicago: open
        ("2026-11-25T15:00:00+00:00", "America/Chicago", "approve", None),
        # 13:00 UTC is 07:00 in Chicago: held until 08:00 local the same day
        ("2026-11-25T13:00:00+00:00", "America/Chicago", "defer", "2026-11-25T14:00:00+00:00"),
        # Friday 18:30 in Berlin: held until Monday 08:00
        ("2026-11-27T17:30:00+00:00", "Europe/Berlin", "defer", "2026-11-30T07:00:00+00:00"),
        # no time zone on the contact: the tenant's (UTC here)
        ("2026-11-25T07:59:00+00:00", "", "defer", "2026-11-25T08:00:00+00:00"),
        # an unknown zone falls back to the tenant's too
        ("2026-11-25T09:00:00+00:00", "Mars/Olympus", "approve", None),
    ],
)
def test_a_send_window_defers_until_it_opens_in_the_contacts_time_zone(at, timezone, expect, release) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    from herald_core.contracts import ActionProposed
    from herald_core.policy_cases import SAMPLE_ACTION

    action = ActionProposed.model_validate(
        {**SAMPLE_ACTION, "tenant": "acme", "contact": {**SAMPLE_ACTION["contact"], "timezone": timezone or None}}
    )
    tenant = TENANT.model_copy(update={"timezone": "UTC"})
    verdict = evaluate(
        load_policy(WINDOWED), action, tenant, stage="proposal", suppression_reason=None, now=datetime.fromisoformat(at)
    )
    assert verdict.outcome == expect, verdict.reason
    assert verdict.release_at == (datetime.fromisoformat(release) if release else None)


def test_an_escalation_or_a_block_wins_over_a_deferral() -> None:
    from datetime import datetime

    night = datetime.fromisoformat("2026-11-25T03:00:00+00:00")
    cases = load_cases(
        "cases:\n"
        "  - {name: vip at night, action: {contact: {vip: true, timezone: UTC}}, expect: escalate}\n"
        "  - {name: opted out at night, action: {contact: {timezone: UTC}}, suppressed: unsubscribe, expect: block}\n"
        "  - {name: plain at night, action: {contact: {timezone: UTC}}, expect: defer,"
        " rules: [schedule.send_window]}\n"
    )
    cases = PolicyCases(cases=tuple(c.model_copy(update={"at": night}) for c in cases.cases))
    assert all(r.passed for r in run_cases(load_policy(WINDOWED), cases)), [
        r.failure for r in run_cases(load_policy(WINDOWED), cases)
    ]


def test_a_window_that_closes_before_it_opens_is_refused_with_its_line() -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy('tenant: acme\nversion: 1\nsend_window:\n  start: "18:00"\n  end: "08:00"\n')
    assert any(p.line == 4 and "start must be before end" in p.message for p in refused.value.problems)


LIMITED = """\
tenant: acme
version: 1
limits:
  - {id: limits.contact_weekly, scope: contact, max: 3, per: 7d}
  - {id: limits.campaign_daily, scope: campaign, channel: email, max: 100, per: 1d, reason: launch pacing}
  - {id: limits.send_email_rate, tool: send_email, max: 20, per: 1m}
  - {id: limits.sms_hourly, channel: sms, max: 5, per: 1h}
"""


def _action(contact_id: str = "c1", campaign_id: str | None = None):  # type: ignore[no-untyped-def]
    return email_action("acme", contact_id=contact_id, email=f"{contact_id}@x.example").model_copy(
        update={"campaign_id": campaign_id}
    )


def test_limits_count_per_scope_channel_and_tool_next_to_the_tenants_own_caps() -> None:
    policy = load_policy(LIMITED)
    counted = {limit.id: (key, limit.per) for limit, key in limits_for(policy, TENANT, _action("c1", "spring"))}
    assert counted == {
        "limits.tenant_emails_per_hour": ("limits.tenant_emails_per_hour", timedelta(hours=1)),
        "limits.contact_emails_per_day": ("limits.contact_emails_per_day/contact/c1", timedelta(days=1)),
        "limits.contact_weekly": ("limits.contact_weekly/contact/c1", timedelta(days=7)),  # every channel
        "limits.campaign_daily": ("limits.campaign_daily/campaign/spring", timedelta(days=1)),
        "limits.send_email_rate": ("limits.send_email_rate", timedelta(minutes=1)),
    }  # the sms budget does not count an email
    without_campaign = {limit.id for limit, _ in limits_for(policy, TENANT, _action("c2"))}
    assert "limits.campaign_daily" not in without_campaign and "limits.contact_weekly" in without_campaign
    described = {limit.id: limit.describe() for limit in policy.document.limits}
    assert described["limits.campaign_daily"] == "100 per 1d per campaign, email"


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        ("{id: limits.x, max: 3, per: 40d}", "between 1s and 31d"),
        ("{id: limits.x, max: -1, per: 1h}", "greater than or equal to 0"),
        ("{id: limits.x, max: 3, per: soon}", "duration"),
        ("{id: limits.x, max: 3, per: 1h, scope: planet}", "'tenant', 'campaign' or 'contact'"),
        ("{id: limits.tenant_emails_per_hour, max: 3, per: 1h}", "built in"),
    ],
)
def test_a_bad_limit_is_refused_with_its_line(limit: str, words: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(f"tenant: acme\nversion: 1\nlimits:\n  - {limit}\n")
    assert any(p.line == 4 and words in p.message for p in refused.value.problems), refused.value.problems


BREAKING = """\
tenant: acme
version: 1
breakers:
  - {id: breaker.bounces, max_rate: 0.1, min_sends: 10, window: 1h, scope: campaign, reason: bounces are up}
  - {id: breaker.complaints, reasons: [complaint], max_rate: 0.01, min_sends: 50, window: 1d, then: block}
"""


@pytest.mark.parametrize(
    ("campaign", "readings", "stage", "expect", "words"),
    [
        ("spring", {"breaker.bounces": BreakerReading(sends=9, problems=5)}, "proposal", "approve", "fewer than 10"),
        ("spring", {"breaker.bounces": BreakerReading(sends=10, problems=1)}, "proposal", "approve", "10.0% ≤ 10.0%"),
        ("spring", {"breaker.bounces": BreakerReading(sends=10, problems=2)}, "proposal", "escalate", "bounces are up"),
        ("spring", {"breaker.bounces": BreakerReading(sends=10, problems=2)}, "review", "approve", ""),
        (None, {"breaker.bounces": BreakerReading(sends=10, problems=9)}, "proposal", "approve", "not a campaign"),
        (None, {"breaker.complaints": BreakerReading(sends=100, problems=2)}, "review", "block", "2.0% > 1.0%"),
    ],
)
def test_a_breaker_opens_over_its_rate_once_there_are_enough_sends(campaign, readings, stage, expect, words) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate(
        load_policy(BREAKING),
        _action("c1", campaign),
        TENANT,
        stage=stage,
        suppression_reason=None,
        breakers=readings,
    )
    assert verdict.outcome == expect, verdict
    assert words in " ".join(h.detail for h in verdict.rules)


def test_a_tenant_without_a_working_unsubscribe_link_sends_nothing() -> None:
    broken = TENANT.model_copy(update={"unsubscribe_url": "http://acmerelay.example/unsubscribe"})
    verdict = evaluate(
        load_policy("tenant: acme\nversion: 1\n"), _action(), broken, stage="proposal", suppression_reason=None
    )
    assert verdict.outcome == "block" and verdict.rule == "content.sender_and_unsubscribe"
    assert "not an https or mailto URL" in verdict.reason


def test_an_action_the_planner_asks_a_person_about_is_escalated_at_proposal_and_decided_after_review() -> None:
    action = email_action("acme", contact_id="42", email="jordan@northwind.example")
    action = action.model_copy(update={"review_reason": "a reply read with confidence 0.55"})
    proposed = evaluate(default_policy(TENANT), action, TENANT, stage="proposal", suppression_reason=None)
    assert (proposed.outcome, proposed.rule) == ("escalate", "escalation.planner_asks")
    assert "confidence 0.55" in proposed.reason
    reviewed = evaluate(default_policy(TENANT), action, TENANT, stage="review", suppression_reason=None)
    assert reviewed.outcome == "approve"  # the person's approval was what it asked for
    # and a hard rule still wins over the ask
    blocked = evaluate(default_policy(TENANT), action, TENANT, stage="proposal", suppression_reason="unsubscribe")
    assert blocked.outcome == "block"

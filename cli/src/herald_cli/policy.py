"""`herald policy …`: check a tenant's policy file, test it, compare it with the live one, backtest it
against recorded proposals, publish it (live or in shadow).

The live policy is the latest accepted publication on the compacted `herald.policy.v1`; every guard
replica follows that topic, so `apply` changes decisions without a restart or a deploy.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from herald_cli.signin import person_headers, refusal
from herald_core.auth.services import ServiceKeys
from herald_core.backtest import replay, summary
from herald_core.bus import (
    Outbound,
    TransactionalProducer,
    TransientError,
    Unreadable,
    read_record,
    read_to_end,
    tail_reader,
)
from herald_core.contracts import PolicyPublished
from herald_core.envelope import Envelope
from herald_core.grounding import GroundingClient
from herald_core.policy import Policy, PolicyError, PolicyRefused, admit, load_policy, needs_grounding
from herald_core.policy_cases import load_cases, run_cases
from herald_core.settings import CommonSettings
from herald_core.tenants import TenantDirectory
from herald_core.topics import POLICY, tenant_key

SOURCE = "herald/cli"


def read(path: Path, console: Console) -> Policy | None:
    """The policy in `path`, or None after printing every problem as `path:line: message`."""
    try:
        return load_policy(path.read_text())
    except OSError as exc:
        console.print(Text(f"{path}: {exc.strerror or exc}", style="red"), soft_wrap=True)
    except UnicodeDecodeError:
        console.print(Text(f"{path}: not UTF-8 text", style="red"), soft_wrap=True)
    except PolicyError as exc:
        for problem in exc.problems:
            where = f"{path}:{problem.line}" if problem.line else str(path)
            line = Text.assemble((where, "red"), f": {problem.path}: {problem.message}")
            console.print(line, highlight=False, soft_wrap=True)
    return None


def validate(path: Path, console: Console) -> int:
    policy = read(path, console)
    if policy is None:
        return 1
    rules = policy.document.rules
    console.print(f"[green]ok[/green] {policy.tenant} {policy.version}: {len(rules)} rule(s)", highlight=False)
    return 0


def test(path: Path, cases_path: Path, console: Console) -> int:
    policy = read(path, console)
    if policy is None:
        return 1
    try:
        cases = load_cases(cases_path.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]{cases_path}: {exc}[/red]")
        return 1
    results = run_cases(policy, cases)
    table = Table(title=f"{policy.tenant} {policy.version}")
    table.add_column("")
    table.add_column("case")
    table.add_column("decision")
    table.add_column("why")
    for result in results:
        decided = result.verdict.outcome if result.verdict else "-"
        why = result.failure or (result.verdict.rule if result.verdict and result.verdict.rule else "")
        table.add_row("[green]✓[/green]" if result.passed else "[red]✗[/red]", result.case.name, decided, why)
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed", style="red" if failed else "green")
    return 1 if failed else 0


async def live(common: CommonSettings, tenant: str) -> Policy | None:
    """The tenant's live policy, as the guard admits it: the topic from its beginning, in order."""
    consumer = await tail_reader(common, POLICY, from_beginning=True)
    current: Policy | None = None
    try:
        async for record in read_to_end(consumer):
            if record.key != tenant_key(tenant):
                continue
            read_ = read_record(record, POLICY)
            if isinstance(read_, Unreadable) or not isinstance(read_.body, PolicyPublished):
                continue
            if read_.body.mode != "live":
                continue
            try:
                current = admit(read_.body, read_.envelope.tenant, current) or current
            except PolicyRefused:
                continue
    finally:
        await consumer.stop()
    return current


def differences(old: Policy | None, new: Policy) -> list[str]:
    """Rule by rule: what `new` adds, removes and changes against `old`."""
    before = {r.id: r for r in old.document.rules} if old else {}
    after = {r.id: r for r in new.document.rules}
    lines = [f"version {old.version if old else '(none published)'} → {new.version}"]
    lines += [f"+ {rule_id}" for rule_id in after if rule_id not in before]
    lines += [f"- {rule_id}" for rule_id in before if rule_id not in after]
    lines += [f"~ {rule_id}" for rule_id in after if rule_id in before and after[rule_id] != before[rule_id]]
    return lines


async def diff(common: CommonSettings, path: Path, console: Console) -> int:
    candidate = read(path, console)
    if candidate is None:
        return 1
    current = await live(common, candidate.tenant)
    for line in differences(current, candidate):
        style = {"+": "green", "-": "red", "~": "yellow"}.get(line[0])
        console.print(line, style=style, highlight=False)
    text = difflib.unified_diff(
        (current.source if current else "").splitlines(keepends=True),
        candidate.source.splitlines(keepends=True),
        fromfile=f"live {current.version if current else '(none)'}",
        tofile=str(path),
    )
    console.print("".join(text), highlight=False, markup=False)
    return 0


async def apply(
    common: CommonSettings,
    path: Path,
    note: str | None,
    published_by: str | None,
    console: Console,
    shadow: bool = False,
) -> int:
    candidate = read(path, console)
    if candidate is None:
        return 1
    current = await live(common, candidate.tenant)
    if current is not None and candidate.document.version <= current.document.version:
        if candidate.sha256 == current.sha256:
            console.print(f"{candidate.tenant} {candidate.version} is already live", highlight=False)
            return 0
        console.print(
            f"[red]version {candidate.document.version} is not above the live version "
            f"{current.document.version}: raise `version` and apply again[/red]"
        )
        return 1
    body = PolicyPublished(
        tenant=candidate.tenant,
        version=candidate.document.version,
        source=candidate.source,
        sha256=hashlib.sha256(candidate.source.encode()).hexdigest(),
        published_by=published_by or getpass.getuser(),
        note=note,
        mode="shadow" if shadow else "live",
    )
    envelope = Envelope.new_chain(
        source=SOURCE, type=PolicyPublished.TYPE, tenant=candidate.tenant, subject=f"policy/{candidate.tenant}"
    )
    producer = TransactionalProducer(common, "cli", name=f"policy-{envelope.id}")
    await producer.start()
    try:
        key = f"{candidate.tenant}:shadow".encode() if shadow else tenant_key(candidate.tenant)
        await producer.publish([Outbound(POLICY, key, envelope, body)])
    finally:
        await producer.stop()
    for line in differences(current, candidate):
        console.print(line, highlight=False)
    said = "published in shadow (decided beside the live policy, not enforced)" if shadow else "published"
    console.print(f"[green]{said}[/green] {candidate.tenant} {candidate.version}", highlight=False)
    return 0


async def show(common: CommonSettings, tenant: str, console: Console) -> int:
    current = await live(common, tenant)
    if current is None:
        console.print(f"{tenant} has no published policy (the guard uses its configuration's escalations)")
        return 1
    console.print(f"# {tenant} {current.version}", highlight=False)
    console.print(current.source, highlight=False, markup=False)
    return 0


async def backtest(
    common: CommonSettings,
    path: Path,
    since: datetime,
    until: datetime | None,
    review_url: str,
    retrieval_target: str,
    as_json: bool,
    show: int,
    out: Console,
    err: Console,
) -> int:
    """Replay the tenant's recorded proposals against the candidate policy; report what would have changed."""
    candidate = read(path, err)
    if candidate is None:
        return 1
    tenant = TenantDirectory(common.tenants_dir).get(candidate.tenant)
    if tenant is None:
        err.print(f"[red]no tenant {candidate.tenant!r} in {common.tenants_dir}[/red]")
        return 1
    params = {"tenant": candidate.tenant, "since": since.isoformat()}
    if until is not None:
        params["until"] = until.isoformat()
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.get(
                f"{review_url.rstrip('/')}/v1/audit/proposals", params=params, headers=person_headers()
            )
        refused = refusal(response)
        if refused is not None:
            err.print(refused, highlight=False, markup=False)
            return 3
        response.raise_for_status()
    except httpx.HTTPError as exc:
        err.print(f"[red]the review service at {review_url} did not give the recorded proposals: {exc}[/red]")
        return 2
    keys = ServiceKeys(common.auth.service_keys_dir, "cli", common.auth.service_token_seconds)
    grounding = GroundingClient(retrieval_target, 10, keys) if needs_grounding(candidate) else None
    try:
        results = await replay(candidate, tenant, response.json(), grounding.check if grounding else None)
    except TransientError as exc:
        err.print(f"[red]the grounding API at {retrieval_target} did not answer: {exc}[/red]")
        return 2
    finally:
        if grounding is not None:
            await grounding.close()
    report = summary(results)
    changed = [r for r in results if r.changed]
    if as_json:
        report["changes_by_action"] = [
            {
                "action_id": r.action_id,
                "contact_id": r.contact_id,
                "proposed_at": r.proposed_at.isoformat(),
                "live": {"outcome": r.live_outcome, "rule": r.live_rule},
                "candidate": {"outcome": r.outcome, "rule": r.rule, "reason": r.reason},
            }
            for r in changed
        ]
        out.print(json.dumps(report, indent=2), markup=False, highlight=False, soft_wrap=True)
        return 0
    out.print(
        f"{candidate.tenant} {candidate.version} against {report['proposals']} recorded proposals since "
        f"{since.isoformat()}: {report['changed']} would change",
        highlight=False,
    )
    for change, count in sorted(report["changes"].items()):
        out.print(f"  {change}: {count}", highlight=False)
    if report["caps_kept"]:
        out.print(f"  ({report['caps_kept']} stopped by a cap, kept: caps are not replayed)", highlight=False)
    if changed:
        table = Table("action", "proposed", "live", "candidate", "why")
        for r in changed[:show]:
            table.add_row(
                r.action_id,
                f"{r.proposed_at:%Y-%m-%d %H:%M}",
                f"{r.live_outcome} {r.live_rule or ''}".strip(),
                f"{r.outcome} {r.rule or ''}".strip(),
                r.reason[:120],
            )
        out.print(table)
    return 0

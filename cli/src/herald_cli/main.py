"""The `herald` command: a tenant's knowledge base (`herald kb`) and policy (`herald policy`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from herald_cli import audit, control, kb, policy, tasks
from herald_core.policy import parse_duration
from herald_core.settings import CommonSettings
from herald_core.signing import rotate_keys

app = typer.Typer(help="Herald's command line. Reads HERALD_* settings (Kafka bootstrap, topic prefix).")
kb_app = typer.Typer(help="A tenant's knowledge base: add, replace and delete documents.")
app.add_typer(kb_app, name="kb")
policy_app = typer.Typer(help="A tenant's policy: validate, test, compare with the live one, publish.")
app.add_typer(policy_app, name="policy")
audit_app = typer.Typer(help="The sealed audit: export it, verify its hash chain.")
app.add_typer(audit_app, name="audit")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="The Herald tenant id.")]
Wait = Annotated[bool, typer.Option(help="Wait for the retrieval service's answer for every document.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the answers.")]


@kb_app.command("add")
def kb_add(
    tenant: Tenant,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories (top folders = collections).")
    ] = None,
    urls: Annotated[Path | None, typer.Option("--urls", help="A file of URLs to fetch, one per line.")] = None,
    collection: Annotated[str | None, typer.Option(help="Put every document in this collection.")] = None,
    base: Annotated[
        Path | None, typer.Option(help="Document ids are paths relative to this directory (default: each one given).")
    ] = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
) -> None:
    """Add or replace documents (Markdown, HTML, PDF, plain text); unchanged ones cost nothing."""
    console = Console(stderr=True)
    candidates = kb.from_paths(paths or [], collection, base)
    if urls is not None:
        lines = [line.strip() for line in urls.read_text().splitlines()]
        candidates += asyncio.run(kb.from_urls([u for u in lines if u and not u.startswith("#")], collection))
    if not candidates:
        raise typer.BadParameter("nothing to add: give files, directories or --urls")
    code = asyncio.run(kb.add(CommonSettings(), tenant, candidates, wait=wait, timeout=timeout, console=console))
    raise typer.Exit(code)


@kb_app.command("delete")
def kb_delete(
    tenant: Tenant,
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of the documents to remove (e.g. pricing/plans).")],
    wait: Wait = True,
    timeout: Timeout = 60.0,
) -> None:
    """Remove documents and every chunk of them from the tenant's knowledge base."""
    console = Console(stderr=True)
    code = asyncio.run(kb.delete(CommonSettings(), tenant, doc_ids, wait=wait, timeout=timeout, console=console))
    raise typer.Exit(code)


PolicyFile = Annotated[Path, typer.Argument(help="The policy (YAML).", exists=False)]


@policy_app.command("validate")
def policy_validate(path: PolicyFile) -> None:
    """Check a policy file: schema, CEL conditions, every problem with its line number."""
    raise typer.Exit(policy.validate(path, Console(stderr=True)))


@policy_app.command("test")
def policy_test(
    path: PolicyFile,
    cases: Annotated[Path, typer.Argument(help="The policy's test cases (YAML).")],
) -> None:
    """Run a policy's YAML test cases: each action's expected decision and the rules that must fire."""
    raise typer.Exit(policy.test(path, cases, Console()))


@policy_app.command("diff")
def policy_diff(path: PolicyFile) -> None:
    """Compare a policy file with the tenant's live policy, rule by rule and line by line."""
    raise typer.Exit(asyncio.run(policy.diff(CommonSettings(), path, Console())))


@policy_app.command("apply")
def policy_apply(
    path: PolicyFile,
    note: Annotated[str | None, typer.Option(help="Why it changes (kept on the audit).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who publishes it (default: the login name).")] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Decide beside the live policy and record differences; never enforce.")
    ] = False,
) -> None:
    """Validate, then publish the policy; every guard replica applies it without a restart."""
    raise typer.Exit(asyncio.run(policy.apply(CommonSettings(), path, note, by, Console(stderr=True), shadow)))


@policy_app.command("backtest")
def policy_backtest(
    candidate: Annotated[Path, typer.Option("--policy", help="The candidate policy file.")],
    since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d (or an ISO time).")] = "7d",
    until: Annotated[str | None, typer.Option(help="Up to this ISO time (default: now).")] = None,
    review_url: Annotated[
        str, typer.Option(envvar="HERALD_REVIEW_URL", help="The review service's API (the audit index).")
    ] = "http://127.0.0.1:8105",
    retrieval_target: Annotated[
        str,
        typer.Option(
            envvar=["HERALD_RETRIEVAL_TARGET", "HERALD_GUARD_RETRIEVAL_TARGET"],
            help="The grounding API (gRPC host:port), when the candidate has a grounding rule.",
        ),
    ] = "127.0.0.1:8202",
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    show: Annotated[int, typer.Option(help="At most this many changed actions listed.")] = 20,
) -> None:
    """What would have been decided otherwise: the tenant's recorded proposals, decided again under the candidate."""
    now = datetime.now(UTC)
    try:
        start = now - parse_duration(since)
    except ValueError:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as exc:
            raise typer.BadParameter("a duration like 7d or an ISO time", param_hint="--since") from exc
    end = datetime.fromisoformat(until) if until else None
    code = asyncio.run(
        policy.backtest(
            CommonSettings(),
            candidate,
            start,
            end,
            review_url,
            retrieval_target,
            as_json,
            show,
            Console(),
            Console(stderr=True),
        )
    )
    raise typer.Exit(code)


@policy_app.command("show")
def policy_show(tenant: Tenant) -> None:
    """Print the tenant's live policy."""
    raise typer.Exit(asyncio.run(policy.show(CommonSettings(), tenant, Console())))


@app.command("kill-switch")
def kill_switch(
    state: Annotated[str, typer.Argument(help="on (stop sending) or off (resume).")],
    reason: Annotated[str, typer.Option(help="Why (kept on the audit and in every refusal).")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="One tenant; leave out for all.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who sets it (default: the login name).")] = None,
) -> None:
    """Stop (or resume) every action of one tenant or of all; the guard and the executor follow within a second."""
    if state not in ("on", "off"):
        raise typer.BadParameter("say on or off", param_hint="STATE")
    console = Console(stderr=True)
    raise typer.Exit(asyncio.run(control.set_kill_switch(CommonSettings(), tenant, state == "on", reason, by, console)))


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (JSON lines).")]) -> None:
    """Copy the sealed audit to a file (JSON lines, bytes in base64), seals included."""
    raise typer.Exit(asyncio.run(audit.export(CommonSettings(), out, Console(stderr=True))))


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Option("--file", help="An export to check (default: the live topic).")] = None,
) -> None:
    """Check every seal and link of the audit's hash chain; name each record where it breaks."""
    raise typer.Exit(asyncio.run(audit.check(CommonSettings(), file, Console())))


keys_app = typer.Typer(help="The guard's signing keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(
    grace: Annotated[
        str, typer.Option(help="How long approvals signed with the old key stay valid: 30s, 15m, 1h, 1d.")
    ] = "1h",
    replacing: Annotated[
        str,
        typer.Option(
            envvar="HERALD_GUARD_SIGNING_KEY_ID", help="The guard's configured key, when none was made current yet."
        ),
    ] = "guard-local-1",
) -> None:
    """Make a new signing key current; the guards sign with it within a second, and the executors honour the
    old key's approvals until the grace period ends."""
    try:
        period = parse_duration(grace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grace") from exc
    new, old = rotate_keys(Path(CommonSettings().keys_dir), period, replacing=replacing)
    Console().print(f"signing with {new}" + (f"; {old} retired after {period}" if old else ""))


@app.command("explain")
def explain(
    action_id: Annotated[str, typer.Argument(help="The action's id.")],
    review_url: Annotated[
        str, typer.Option(envvar="HERALD_REVIEW_URL", help="The review service's API.")
    ] = "http://127.0.0.1:8105",
    as_json: Annotated[bool, typer.Option("--json", help="The explanation as JSON.")] = False,
) -> None:
    """Why did it do that? The action's chain from the audit: event, plan, evidence, rules, reviewer, result."""
    raise typer.Exit(audit.explain(review_url, action_id, as_json, Console(), Console(stderr=True)))


@app.command("task")
def task(
    tenant: Tenant,
    brief: Annotated[
        Path | None,
        typer.Option("--brief", help="A defined brief (YAML): campaign_id, topic, goal, segment, variants."),
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="A free-text task, for the LLM planner.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the batch is proposed, and print it.")] = False,
    timeout: Timeout = 300.0,
    by: Annotated[str | None, typer.Option("--by", help="Who asks (default: the login name).")] = None,
    planner_url: Annotated[
        str, typer.Option(envvar="HERALD_PLANNER_URL", help="The planner's API.")
    ] = "http://127.0.0.1:8130",
    token_file: Annotated[
        Path | None,
        typer.Option(envvar="HERALD_TASK_TOKEN_FILE", help="A file holding one of the tenant's bearer tokens."),
    ] = None,
) -> None:
    """A campaign task: a defined brief (run without an LLM) or free text; its sends wait in review as one batch.
    Exit 0 accepted (with --wait: proposed), 2 refused with the planner's reason (nothing was done), 1 otherwise."""
    import getpass

    err = Console(stderr=True)
    if (brief is None) == (text is None):
        raise typer.BadParameter("give --brief FILE or --text, one of them")
    request: dict[str, object] = {"tenant": tenant, "requested_by": by or getpass.getuser()}
    if brief is not None:
        try:
            request |= {"kind": "defined", "brief": tasks.read_brief(brief)}
        except ValueError as exc:
            err.print(f"refused: {exc}", highlight=False, markup=False)
            raise typer.Exit(2) from exc
    else:
        request |= {"kind": "open", "text": text}
    token = token_file.read_text().strip() if token_file is not None else None
    raise typer.Exit(
        tasks.submit(planner_url, request, token=token, wait=wait, timeout=timeout, out=Console(), err=err)
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()

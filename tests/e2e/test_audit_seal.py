"""The tamper-evident audit: every audit record sealed into a per-partition hash chain by the review
service; `herald audit verify` holds on the live topic and names the record where an exported copy was
altered, cut or reordered."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from herald_core.topics import PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, herald_command, publish_many

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


def exported(herald, path: Path) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    result = herald_command(herald, "audit", "export", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def tenant_of(line: dict[str, object]) -> str:
    headers = dict(line["headers"])  # type: ignore[arg-type]
    return base64.b64decode(headers.get("ce_tenant") or b"").decode()


async def test_the_sealed_audit_verifies_and_names_an_altered_removed_or_moved_record(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"seal{os.urandom(3).hex()}")
    proposals = []
    for n in range(12):
        action = email_action(tenant, contact_id=f"s{n}", email=f"s{n}@{tenant}.example")
        proposals.append((contact_key(tenant, f"s{n}"), envelope(tenant, action, source="test/planner"), action))
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), proposals)

    def sealed_enough() -> list[dict[str, object]] | None:
        lines = exported(herald, tmp_path / "audit.jsonl")
        mine = [line for line in lines if tenant_of(line) == tenant]
        return lines if len(mine) >= 24 else None  # each proposal's decision and its approval or execution

    lines = await eventually(sealed_enough, timeout=60, interval=1.0, what="the tenant's records sealed")
    live = herald_command(herald, "audit", "verify")
    assert live.returncode == 0 and "every seal and link holds" in live.stdout + live.stderr, live.stderr

    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert herald_command(herald, "audit", "verify", "--file", str(clean)).returncode == 0

    # a partition with at least three records, to alter, cut and swap in its middle
    by_partition: dict[int, list[int]] = {}
    for index, line in enumerate(lines):
        by_partition.setdefault(int(line["partition"]), []).append(index)  # type: ignore[call-overload]
    rows = next(indexes for indexes in by_partition.values() if len(indexes) >= 3)
    middle = lines[rows[1]]
    following = lines[rows[2]]

    def verify(name: str, changed: list[dict[str, object]]) -> str:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in changed))
        result = herald_command(herald, "audit", "verify", "--file", str(path))
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        return result.stdout + result.stderr

    altered = [dict(line) for line in lines]
    body = base64.b64decode(str(middle["value"])).replace(b'"', b"'", 1)
    altered[rows[1]] = {**middle, "value": base64.b64encode(body).decode()}
    said = verify("altered", altered)
    assert f"position {middle['position']}" in said and "altered" in said

    removed = [line for index, line in enumerate(lines) if index != rows[1]]
    said = verify("removed", removed)
    assert f"position {following['position']}" in said and "removed, altered or moved" in said

    swapped = list(lines)
    swapped[rows[1]], swapped[rows[2]] = swapped[rows[2]], swapped[rows[1]]
    said = verify("swapped", swapped)
    assert "removed, altered or moved" in said

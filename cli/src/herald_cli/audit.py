"""`herald audit export|verify`: the sealed audit, copied out and checked link by link."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console

from herald_cli.signin import person_headers, refusal
from herald_core.audit import SealedRecord, verify
from herald_core.bus import BusNames, read_to_end, tail_reader
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT_SEALED


async def read_sealed(common: CommonSettings) -> list[SealedRecord]:
    """Every committed record of the sealed audit, partition by partition, in order."""
    consumer = await tail_reader(common, AUDIT_SEALED, from_beginning=True)
    records: list[SealedRecord] = []
    try:
        async for r in read_to_end(consumer):
            records.append(SealedRecord(r.partition, r.offset, r.key, r.value, tuple(r.headers or ())))
    finally:
        await consumer.stop()
    records.sort(key=lambda s: (s.partition, s.position))
    return records


def read_export(path: Path) -> Iterator[SealedRecord]:
    with path.open() as lines:
        for line in lines:
            if line.strip():
                yield SealedRecord.from_json(line)


async def export(common: CommonSettings, out: Path, console: Console) -> int:
    records = await read_sealed(common)
    with out.open("w") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
    console.print(f"exported {len(records)} sealed audit record(s) to {out}", highlight=False)
    return 0


async def check(common: CommonSettings, file: Path | None, console: Console) -> int:
    records = list(read_export(file)) if file else await read_sealed(common)
    checked, breaks = verify(records)
    source = str(file) if file else BusNames(common.topic_prefix)(AUDIT_SEALED)
    for problem in breaks:
        console.print(f"[red]broken[/red] {problem}", highlight=False, soft_wrap=True)
    if breaks:
        console.print(f"{len(breaks)} break(s) in {checked} record(s) of {source}", style="red")
        return 1
    console.print(f"[green]ok[/green] {checked} record(s) of {source}: every seal and link holds", highlight=False)
    return 0


def explain(review_url: str, action_id: str, as_json: bool, out: Console, err: Console) -> int:
    try:
        response = httpx.get(
            f"{review_url.rstrip('/')}/v1/explain/{action_id}",
            params={"format": "json" if as_json else "text"},
            headers=person_headers(),
            timeout=30,
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]the review service at {review_url} did not answer: {exc}[/red]")
        return 2
    refused = refusal(response)
    if refused is not None:
        err.print(refused, highlight=False, markup=False)
        return 3
    if response.status_code == 404:
        err.print(f"no action {action_id} in the audit", highlight=False)
        return 1
    response.raise_for_status()
    text = json.dumps(response.json(), indent=2) if as_json else response.text
    out.print(text, highlight=False, markup=False, soft_wrap=True)
    return 0

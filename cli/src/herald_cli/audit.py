"""`herald audit export|verify`: the sealed audit, copied out and checked link by link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

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

"""The audit's hash chain, on records built here: what `verify` accepts and what it names."""

from __future__ import annotations

from dataclasses import replace

from herald_core.audit import SealedRecord, seal_headers, verify


def sealed(partition: int, count: int) -> list[SealedRecord]:
    records, prev = [], ""
    for n in range(count):
        value = f'{{"n": {n}}}'.encode()
        headers, prev = seal_headers(prev, partition, 10 + n, b"k", [("ce_id", f"m{partition}-{n}".encode())], value)
        records.append(SealedRecord(partition, n, b"k", value, tuple(headers)))
    return records


def test_an_intact_chain_over_several_partitions_verifies() -> None:
    records = sealed(0, 5) + sealed(3, 4)
    assert verify(records) == (9, [])
    # and survives a round trip through an export line
    assert verify([SealedRecord.from_json(r.to_json()) for r in records]) == (9, [])


def test_each_kind_of_tampering_is_named_at_its_record() -> None:
    records = sealed(0, 5)
    altered = list(records)
    altered[2] = replace(records[2], value=b'{"n": 99}')
    assert [(b.position, "altered" in b.problem) for b in verify(altered)[1]] == [(2, True)]

    removed = records[:2] + records[3:]
    (only,) = verify(removed)[1]
    assert only.position == 3 and "removed, altered or moved" in only.problem and only.message_id == "m0-3"

    swapped = [records[0], records[2], records[1], records[3], records[4]]
    assert {b.position for b in verify(swapped)[1]} >= {2, 1}

    headless = records[1:]
    assert "does not start here" in verify(headless)[1][0].problem
    assert verify(headless, from_start=False) == (4, [])

    unsealed = [*records, SealedRecord(0, 5, b"k", b"{}", (("ce_id", b"x"),))]
    assert "not sealed" in verify(unsealed)[1][0].problem


def test_a_changed_header_breaks_the_seal_too() -> None:
    records = sealed(1, 3)
    headers = tuple((k, b"globex" if k == "ce_id" else v) for k, v in records[1].headers)
    assert [b.position for b in verify([records[0], replace(records[1], headers=headers), records[2]])[1]] == [1]

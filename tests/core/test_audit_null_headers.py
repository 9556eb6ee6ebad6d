"""The audit's seal over headers whose value is null (Kafka allows them; aiokafka reads them as None): sealed
distinctly from an empty value, kept null through an export line, and verified — while every seal of a record
without a null header stays byte for byte what it always was, so chains already on disk still verify. And the
stand-in a record too large for the sealed topic gets: it names the original and seals like any record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from herald_core.audit import STAND_IN, SealedRecord, seal, seal_headers, stand_in, verify

# computed with the seal as it was before null header values were sealed: they must never change
KNOWN_SEALS = (
    (
        (
            "",
            0,
            7,
            b"tenant:contact",
            [("ce_id", b"m-1"), ("ce_type", b"herald.action.proposed.v1"), ("empty", b"")],
            b'{"n": 1}',
        ),
        "4bb9d48f52e3da444313a15cce6ac44ed42521ab143316e83eb2f8092652b31c",
    ),
    (("ab" * 32, 2, 41, None, [], None), "fad387ea3e4c3618b8abafc3dc6e879f535fa538ef9edc0c963b80675501b0d1"),
)


def test_a_record_without_null_headers_seals_as_it_always_did() -> None:
    for args, digest in KNOWN_SEALS:
        assert seal(*args) == digest


def test_a_null_header_value_seals_distinctly_from_an_empty_one_and_from_no_header() -> None:
    def with_trace(value: bytes | None) -> str:
        return seal("", 0, 1, b"k", [("ce_id", b"m"), ("trace", value)], b"{}")

    null, empty, absent = with_trace(None), with_trace(b""), seal("", 0, 1, b"k", [("ce_id", b"m")], b"{}")
    assert len({null, empty, absent}) == 3
    assert with_trace(None) == null  # and it is a seal: the same record seals the same way again


def test_null_headers_seal_whatever_their_order_and_alongside_values_of_the_same_name() -> None:
    first = seal("", 3, 9, None, [("x", None), ("x", b"a"), ("a", None)], None)
    again = seal("", 3, 9, None, [("a", None), ("x", b"a"), ("x", None)], None)
    assert first == again


def sealed_with_nulls(partition: int = 4) -> list[SealedRecord]:
    records, prev = [], ""
    shapes: list[list[tuple[str, bytes | None]]] = [
        [("ce_id", b"m0"), ("trace", None)],
        [("ce_id", b"m1"), ("trace", b"")],
        [("ce_id", b"m2")],
        [("ce_id", b"m3"), ("trace", None), ("trace", b"t"), ("other", None)],
    ]
    for n, headers in enumerate(shapes):
        value = None if n == 2 else f'{{"n": {n}}}'.encode()
        sealed_headers, prev = seal_headers(prev, partition, 100 + n, None if n == 1 else b"k", headers, value)
        records.append(SealedRecord(partition, n, None if n == 1 else b"k", value, tuple(sealed_headers)))
    return records


def test_records_with_null_headers_verify_and_survive_an_export_line_with_null_kept_null() -> None:
    records = sealed_with_nulls()
    assert verify(records) == (4, [])

    lines = [r.to_json() for r in records]
    read_back = [SealedRecord.from_json(line) for line in lines]
    assert read_back == records
    assert ("trace", None) in read_back[0].headers and ("trace", b"") in read_back[1].headers
    assert '["trace", null]' in lines[0] and '["trace", ""]' in lines[1]
    assert verify(read_back) == (4, [])


def test_a_null_header_made_empty_or_an_empty_one_made_null_is_named_as_altered() -> None:
    records = sealed_with_nulls()
    emptied = replace(records[0], headers=tuple((k, b"" if v is None else v) for k, v in records[0].headers))
    nulled = replace(records[1], headers=tuple((k, None if k == "trace" else v) for k, v in records[1].headers))
    for position, changed in ((0, emptied), (1, nulled)):
        tampered = list(records)
        tampered[position] = changed
        (only,) = verify(tampered)[1]
        assert only.position == position and "altered" in only.problem


def test_a_stand_in_names_the_original_keeps_its_small_headers_and_seals_in_the_chain() -> None:
    first_headers, prev = seal_headers("", 2, 40, b"k", [("ce_id", b"m40")], b"{}")
    headers = [("ce_id", b"m41"), ("ce_tenant", b"acme"), ("blob", b"x" * 5000), ("trace", None)]
    key, kept, value = stand_in(prev, 2, 41, b"k" * 2000, headers, b"v" * 10, "too large to copy")

    described = json.loads(value)
    assert described["original_seal"] == seal(prev, 2, 41, b"k" * 2000, headers, b"v" * 10)
    assert described["value_sha256"] == hashlib.sha256(b"v" * 10).hexdigest() and described["value_bytes"] == 10
    assert described["key_sha256"] == hashlib.sha256(b"k" * 2000).hexdigest() and key is None  # too long to keep
    assert described["headers_dropped"] == ["blob"]
    assert kept == [("ce_id", b"m41"), ("ce_tenant", b"acme"), ("trace", None), (STAND_IN, b"too large to copy")]

    second_headers, _ = seal_headers(prev, 2, 41, key, kept, value)
    chain = [
        SealedRecord(2, 0, b"k", b"{}", tuple(first_headers)),
        SealedRecord(2, 1, key, value, tuple(second_headers)),
    ]
    assert verify(chain) == (2, [])
    assert chain[1].message_id == "m41" and chain[1].header(STAND_IN) == "too large to copy"

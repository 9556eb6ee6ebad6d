"""The tamper-evident audit: every audit record sealed into a hash chain, per partition.

The review service reads `herald.audit.v1` and writes each record, unchanged, to the same
partition of `herald.audit-sealed.v1` with three headers:

    herald_audit_offset  the record's offset on herald.audit.v1 (its place in the original order)
    herald_prev_hash     the seal of the sealed record before it in this partition ("" for the first)
    herald_hash          SHA-256 over prev hash, partition, offset, key, headers and value

so a record that is altered no longer matches its seal, and one that is removed or moved breaks
the link of the record after it. `verify` walks a partition's records (from the topic, or from a
file `herald audit export` wrote) and names every record where the chain breaks.

Kafka lets a header carry no value at all (null, not empty); the seal tells the two apart. A record the
sealed topic cannot take as it is (larger than the topic allows once sealed) is sealed at its place as a
`stand_in`: a small record that names the original's SHA-256 and the seal the original would have had.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OFFSET = "herald_audit_offset"
PREV_HASH = "herald_prev_hash"
HASH = "herald_hash"
SEAL_HEADERS = (OFFSET, PREV_HASH, HASH)
STAND_IN = "herald_stand_in"  # on a stand-in only: why the original could not be copied

# A part's length prefix: 8 bytes. A header without a value is sealed as this length and no bytes — no real
# length is 2**64 - 1, so a null value never seals like an empty one (or any other), and a record without
# null headers seals exactly as it did before null values were told apart.
_LENGTH_BYTES = 8
_NULL = b"\xff" * _LENGTH_BYTES

Header = tuple[str, bytes | None]  # as Kafka (and aiokafka) give it: a null value is None


@dataclass(frozen=True)
class SealedRecord:
    """One sealed audit record, as read from the sealed topic or an export."""

    partition: int
    position: int  # its offset on the sealed topic (or its line in an export)
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]

    def header(self, name: str) -> str:
        """The first header of that name as text ("" when absent or null)."""
        return next(((v or b"").decode(errors="replace") for k, v in self.headers if k == name), "")

    @property
    def message_id(self) -> str:
        return self.header("ce_id")

    @property
    def content_headers(self) -> tuple[Header, ...]:
        return tuple((k, v) for k, v in self.headers if k not in SEAL_HEADERS)

    def to_json(self) -> str:
        def b64(data: bytes | None) -> str | None:
            return None if data is None else base64.b64encode(data).decode()

        return json.dumps(
            {
                "partition": self.partition,
                "position": self.position,
                "key": b64(self.key),
                "value": b64(self.value),
                "headers": [[k, b64(v)] for k, v in self.headers],
            }
        )

    @classmethod
    def from_json(cls, line: str) -> SealedRecord:
        data = json.loads(line)

        def unb64(text: str | None) -> bytes | None:
            return None if text is None else base64.b64decode(text)

        return cls(
            int(data["partition"]),
            int(data["position"]),
            unb64(data["key"]),
            unb64(data["value"]),
            tuple((k, unb64(v)) for k, v in data["headers"]),  # a null header value stays null
        )


def seal(
    prev_hash: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Iterable[Header],
    value: bytes | None,
) -> str:
    """The seal of one record: SHA-256 over its predecessor's seal and everything it carries.

    A null key or value seals as an empty one (as it always has); a null header value seals as itself."""
    digest = hashlib.sha256()
    for part in (prev_hash.encode(), str(partition).encode(), str(offset).encode(), key or b"", value or b""):
        digest.update(len(part).to_bytes(_LENGTH_BYTES, "big"))
        digest.update(part)
    # headers in name then value order, a null value before any other of the same name (bytes never compare
    # with None); without null values this is the plain (name, value) order seals have always used
    own = sorted(((k, v) for k, v in headers if k not in SEAL_HEADERS), key=lambda h: (h[0], h[1] is not None, h[1]))
    for name, data in own:
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(_LENGTH_BYTES, "big"))
        digest.update(encoded)
        if data is None:
            digest.update(_NULL)
        else:
            digest.update(len(data).to_bytes(_LENGTH_BYTES, "big"))
            digest.update(data)
    return digest.hexdigest()


def seal_headers(
    prev_hash: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[Header],
    value: bytes | None,
) -> tuple[list[Header], str]:
    """The headers a sealed copy carries, and its seal (the next record's prev hash)."""
    own = [(k, v) for k, v in headers if k not in SEAL_HEADERS]
    sealed = seal(prev_hash, partition, offset, key, own, value)
    return [*own, (OFFSET, str(offset).encode()), (PREV_HASH, prev_hash.encode()), (HASH, sealed.encode())], sealed


_KEPT_PART_BYTES = 1024  # a stand-in keeps the original's key and each header up to this size…
_KEPT_HEADER_BYTES = 64 * 1024  # …and its headers up to this much in all


def stand_in(
    prev_hash: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[Header],
    value: bytes | None,
    reason: str,
) -> tuple[bytes | None, list[Header], bytes]:
    """What the sealed topic holds in place of a record it cannot take: (key, headers, value) of a small record
    naming the original's SHA-256 and the seal the original would have had at this place, with the original's
    small headers (its envelope) and the reason in `herald_stand_in`. It is sealed like any record, so the chain
    stays whole; whoever holds the original can check it against `original_seal`."""
    own = [(k, v) for k, v in headers if k not in SEAL_HEADERS and k != STAND_IN]
    kept: list[Header] = []
    dropped: list[str] = []
    room = _KEPT_HEADER_BYTES
    for name, data in own:
        size = len(name.encode()) + len(data or b"")
        if size <= min(_KEPT_PART_BYTES, room):
            kept.append((name, data))
            room -= size
        else:
            dropped.append(name)
    described = {
        "reason": reason,
        "original_seal": seal(prev_hash, partition, offset, key, own, value),
        "value_sha256": hashlib.sha256(value or b"").hexdigest(),
        "value_bytes": len(value or b""),
        "key_sha256": hashlib.sha256(key or b"").hexdigest(),
        "headers_dropped": dropped,
    }
    small_key = key if key is not None and len(key) <= _KEPT_PART_BYTES else None
    return small_key, [*kept, (STAND_IN, reason.encode())], json.dumps(described, sort_keys=True).encode()


@dataclass(frozen=True)
class Break:
    partition: int
    position: int
    message_id: str
    problem: str

    def __str__(self) -> str:
        return f"partition {self.partition} position {self.position} (message {self.message_id or '?'}): {self.problem}"


def verify(records: Iterable[SealedRecord], *, from_start: bool = True) -> tuple[int, list[Break]]:
    """Walk the records partition by partition in their order; return how many were checked and every break.

    With `from_start`, each partition's first record must open the chain (records before it are missing
    otherwise). A cut at the very end of a partition leaves no broken link; compare counts for that."""
    last: dict[int, tuple[str, int]] = {}  # partition → (seal, original offset) of the record before
    breaks: list[Break] = []
    checked = 0
    for record in records:
        checked += 1
        partition = record.partition
        claimed_prev, claimed_hash = record.header(PREV_HASH), record.header(HASH)
        try:
            offset = int(record.header(OFFSET))
        except ValueError:
            breaks.append(Break(partition, record.position, record.message_id, "no original offset: not sealed"))
            continue
        actual = seal(claimed_prev, partition, offset, record.key, record.content_headers, record.value)
        if actual != claimed_hash:
            breaks.append(
                Break(partition, record.position, record.message_id, "altered: its content does not match its seal")
            )
        before = last.get(partition)
        if before is None and from_start and claimed_prev:
            problem = "records before it are missing: the chain does not start here"
            breaks.append(Break(partition, record.position, record.message_id, problem))
        if before is not None:
            prev_seal, prev_offset = before
            if claimed_prev != prev_seal:
                breaks.append(
                    Break(
                        partition,
                        record.position,
                        record.message_id,
                        "the record before it was removed, altered or moved",
                    )
                )
            elif offset <= prev_offset:
                breaks.append(Break(partition, record.position, record.message_id, f"out of order (offset {offset})"))
        last[partition] = (claimed_hash, offset)
    return checked, breaks

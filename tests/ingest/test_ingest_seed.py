"""`herald-ingest seed`: contacts into the contact store, their opt-outs recorded once as consent withdrawals."""

from __future__ import annotations

import pytest

from herald_core.contracts import ConsentReason, ConsentWithdrawn, ContactCreated
from herald_core.topics import CONSENT, EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _stored(ingest, tenant: str, contact_ids: list[str]) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    pool = await ingest.db()
    rows = await pool.fetch(
        "SELECT * FROM ingest.contacts WHERE tenant = $1 AND contact_id = ANY($2::text[])", tenant, contact_ids
    )
    return {r["contact_id"]: dict(r) for r in rows}


async def test_seed_loads_the_contacts_and_records_each_opt_out_once(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keen = ingest.contact(vip=True, deal_value_minor=6_000_000)
    gone = ingest.contact(opted_out=True)
    also_gone = ingest.contact(opted_out=True, email=None)
    path = ingest.contacts_file(tmp_path, [keen, gone, also_gone])

    code, stdout, stderr = await ingest.seed(ingest.tenant, path)
    assert code == 0, stderr
    assert f"seeded 3 contacts into tenant {ingest.tenant}; 2 opted out, 2 new opt-out(s) recorded" in stdout

    ids = [str(c["contact_id"]) for c in (keen, gone, also_gone)]
    stored = await _stored(ingest, ingest.tenant, ids)
    assert set(stored) == set(ids)
    row = stored[str(keen["contact_id"])]
    for column in ("email", "first_name", "last_name", "company", "job_title", "industry", "lifecycle_stage"):
        assert row[column] == keen[column]
    assert (row["country"], row["timezone"]) == ("US", "America/Chicago")
    assert (row["vip"], row["deal_value_minor"]) == (True, 6_000_000)
    assert [stored[i]["opted_out"] for i in ids] == [False, True, True]

    for spec in (EVENTS, CONSENT):
        withdrawals = {
            r.body(ConsentWithdrawn).contact_id: r.body(ConsentWithdrawn)
            for r in await ingest.read(spec)
            if r.type == ConsentWithdrawn.TYPE and r.tenant == ingest.tenant
        }
        for contact in (gone, also_gone):
            withdrawn = withdrawals[str(contact["contact_id"])]
            assert withdrawn.reason is ConsentReason.IMPORTED_OPT_OUT
            assert withdrawn.upstream_event_id == f"seed-optout-{contact['contact_id']}"
            assert withdrawn.email == contact["email"]
        assert str(keen["contact_id"]) not in withdrawals

    # seeding again updates the store and publishes nothing new
    before = len(await ingest.read(CONSENT))
    code, stdout, stderr = await ingest.seed(ingest.tenant, path)
    assert code == 0, stderr
    assert "2 opted out, 0 new opt-out(s) recorded" in stdout
    assert len(await ingest.read(CONSENT)) == before

    # the webhook enriches from what was seeded
    event = ingest.creation(keen)
    assert (await ingest.post_hubspot(ingest.tenant, [event])).json()["accepted"] == 1
    [record] = [r for r in await ingest.read(EVENTS) if r.json().get("upstream_event_id") == str(event["eventId"])]
    assert record.body(ContactCreated).contact.deal_value_minor == 6_000_000


async def test_seed_refuses_a_file_with_a_bad_line_and_writes_nothing(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fine = ingest.contact(opted_out=True)
    broken = ingest.contact(email="not an address")
    path = ingest.contacts_file(tmp_path, [fine, broken])
    path.write_text(path.read_text() + "{not json\n")

    code, _, stderr = await ingest.seed(ingest.tenant, path)
    assert code == 2
    assert "2 unreadable line(s)" in stderr
    assert "line 2: email" in stderr
    assert "line 3:" in stderr
    assert await _stored(ingest, ingest.tenant, [str(fine["contact_id"])]) == {}
    marker = f"seed-optout-{fine['contact_id']}"
    consent = [r for r in await ingest.read(CONSENT) if r.value is not None]  # tombstones of erasures aside
    assert not [r for r in consent if r.json().get("upstream_event_id") == marker]


async def test_seed_refuses_an_unknown_tenant(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _, stderr = await ingest.seed("nosuchtenant", ingest.contacts_file(tmp_path, [ingest.contact()]))
    assert code == 2
    assert "unknown tenant 'nosuchtenant'" in stderr

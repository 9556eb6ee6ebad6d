"""`herald-ingest`: run the ingest service, or `herald-ingest seed --tenant T --contacts FILE.jsonl`.

Seeding loads a tenant's contacts into Herald's own contact store and records the opt-outs it
carries as `ConsentWithdrawn` events (de-duplicated like any upstream event, so seeding twice
publishes nothing new).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from herald_core.bus import TransactionalProducer
from herald_core.contracts import ConsentReason, ConsentWithdrawn
from herald_core.db import create_pool, migrate
from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_core.tenants import TenantDirectory
from herald_ingest.adapters.contacts import PostgresContacts, read_contacts_file
from herald_ingest.adapters.dedup import SeenEvents
from herald_ingest.app import Ingest, create_app
from herald_ingest.settings import Settings

SEED_SOURCE = "herald-seed"


async def seed(settings: Settings, tenant: str, path: Path) -> tuple[int, int]:
    common = settings.common
    pool = await create_pool(common.pg_dsn)
    producer = TransactionalProducer(common, "ingest", name="seed")
    try:
        await migrate(pool, "ingest", Path(str(files("herald_ingest") / "migrations")))
        contacts = read_contacts_file(path)
        store = PostgresContacts(pool)
        await store.upsert(tenant, contacts)
        await producer.start()
        ingest = Ingest(settings, TenantDirectory(common.tenants_dir), store, SeenEvents(pool), producer)
        opted_out = [c for c in contacts if c.get("opted_out")]
        keys = [(SEED_SOURCE, f"seed-optout-{c['contact_id']}") for c in opted_out]
        async with ingest.seen.claim(tenant, keys) as fresh:
            messages = []
            for contact in opted_out:
                event_id = f"seed-optout-{contact['contact_id']}"
                if (SEED_SOURCE, event_id) not in fresh:
                    continue
                withdrawn = ConsentWithdrawn(
                    contact_id=str(contact["contact_id"]),
                    email=contact.get("email"),
                    reason=ConsentReason.IMPORTED_OPT_OUT,
                    upstream_source=SEED_SOURCE,
                    upstream_event_id=event_id,
                    occurred_at=datetime.now(UTC),
                )
                messages.extend(ingest.outbound(tenant, withdrawn, str(contact["contact_id"]), None))
            await producer.publish(messages)
        return len(contacts), len(messages) // 2
    finally:
        await producer.stop()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="herald-ingest")
    sub = parser.add_subparsers(dest="command")
    seeding = sub.add_parser("seed", help="load contacts (JSON lines) into the contact store; record their opt-outs")
    seeding.add_argument("--tenant", required=True)
    seeding.add_argument("--contacts", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings()
    configure_logging("ingest", settings.common.log_level)
    if args.command == "seed":
        count, opt_outs = asyncio.run(seed(settings, args.tenant, args.contacts))
        print(f"seeded {count} contacts into tenant {args.tenant}; recorded {opt_outs} new opt-out(s)")
    else:
        run(lambda: create_app(settings))


if __name__ == "__main__":
    main()

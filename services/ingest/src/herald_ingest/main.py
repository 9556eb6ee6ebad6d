"""`herald-ingest`: run the ingest service, or `herald-ingest seed --tenant T --contacts FILE.jsonl`.

Seeding loads a tenant's contacts into Herald's own contact store and records the opt-outs it
carries as `ConsentWithdrawn` events (reason `imported_opt_out`, de-duplicated like any upstream
event, so seeding twice publishes nothing new).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from herald_core.bus import TransactionalProducer
from herald_core.db import create_pool, migrate
from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_core.tenants import TenantDirectory
from herald_ingest.adapters.contacts import ContactFileError, PostgresContacts, read_contacts_file
from herald_ingest.adapters.dedup import SeenEvents
from herald_ingest.adapters.threads import SentEmails
from herald_ingest.app import MIGRATIONS, Ingest, create_app
from herald_ingest.logic import SEED, seed_opt_out
from herald_ingest.settings import Settings


@dataclass(frozen=True)
class SeedResult:
    contacts: int
    opt_outs: int
    new_opt_outs: int


class SeedError(Exception):
    """Seeding refused before anything was written; the message says why."""


async def seed(settings: Settings, tenant: str, path: Path) -> SeedResult:
    """Upsert the file's contacts into the contact store, then publish their opt-outs (once)."""
    common = settings.common
    tenants = TenantDirectory(common.tenants_dir)
    if tenants.get(tenant) is None:
        raise SeedError(f"unknown tenant {tenant!r} (no tenant file in {common.tenants_dir})")
    try:
        contacts = read_contacts_file(path)
    except (OSError, ContactFileError) as exc:
        raise SeedError(str(exc)) from exc
    pool = await create_pool(common.pg_dsn, max_size=2)
    producer = TransactionalProducer(common, "ingest", name="seed")
    try:
        await migrate(pool, "ingest", MIGRATIONS)
        store = PostgresContacts(pool)
        await store.upsert(tenant, contacts)
        await producer.start()
        ingest = Ingest(settings, tenants, store, SeenEvents(pool), producer, SentEmails(pool))
        now = datetime.now(UTC)
        opt_outs = [((SEED, f"seed-optout-{c.id}"), seed_opt_out(c, now)) for c in contacts if c.opted_out]
        accepted, _ = await ingest.accept(tenant, opt_outs, None)
        return SeedResult(len(contacts), len(opt_outs), accepted)
    finally:
        if producer.started:
            await producer.stop()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="herald-ingest", description="Herald's ingest service (layer 1, data).")
    sub = parser.add_subparsers(dest="command")
    seeding = sub.add_parser("seed", help="load contacts (JSON lines) into the contact store; record their opt-outs")
    seeding.add_argument("--tenant", required=True, help="the Herald tenant the contacts belong to")
    seeding.add_argument("--contacts", type=Path, required=True, help="a JSON-lines file, one contact per line")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "seed":
        configure_logging("ingest", settings.common.log_level)
        try:
            result = asyncio.run(seed(settings, args.tenant, args.contacts))
        except SeedError as exc:
            print(f"herald-ingest seed: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        print(
            f"seeded {result.contacts} contacts into tenant {args.tenant}; "
            f"{result.opt_outs} opted out, {result.new_opt_outs} new opt-out(s) recorded"
        )
    else:
        run("ingest", settings, create_app)


if __name__ == "__main__":
    main()

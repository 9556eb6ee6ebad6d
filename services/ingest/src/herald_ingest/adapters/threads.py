"""The emails Herald sent (`ingest.sent_emails`), kept from the executor's reports so a reply finds its thread."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from herald_ingest.replies import SentEmail, action_of_message_id


class SentEmails:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, tenant: str, sent: SentEmail) -> None:
        """Keep one sent email (a redelivered report changes nothing)."""
        await self.pool.execute(
            "INSERT INTO ingest.sent_emails(tenant, action_id, message_id, contact_id, workflow_id) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, action_id) DO UPDATE "
            "SET message_id = COALESCE(ingest.sent_emails.message_id, EXCLUDED.message_id)",
            tenant,
            sent.action_id,
            sent.message_id,
            sent.contact_id,
            sent.workflow_id,
        )

    async def find(self, tenant: str, thread: Sequence[str]) -> tuple[str, SentEmail] | None:
        """The first Message-ID of `thread` that names one of the tenant's sent emails, with that email: by the
        Message-ID it was sent with, or by Herald's scheme (`<action id@domain>`) when its report had none."""
        if not thread:
            return None
        actions = {message_id: action_of_message_id(message_id) for message_id in thread}
        rows = await self.pool.fetch(
            "SELECT action_id, message_id, contact_id, workflow_id FROM ingest.sent_emails "
            "WHERE tenant = $1 AND (message_id = ANY($2::text[]) OR action_id = ANY($3::text[]))",
            tenant,
            list(thread),
            [a for a in actions.values() if a is not None],
        )
        found = [SentEmail(r["action_id"], r["contact_id"], r["workflow_id"], r["message_id"]) for r in rows]
        for message_id in thread:
            for sent in found:
                if message_id == sent.message_id or actions[message_id] == sent.action_id:
                    return message_id, sent
        return None

    async def forget(self, tenant: str, contact_id: str) -> None:
        await self.pool.execute(
            "DELETE FROM ingest.sent_emails WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
        )

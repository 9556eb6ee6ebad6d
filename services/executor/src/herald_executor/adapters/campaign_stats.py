"""fetch_campaign_stats: sends, deliveries, opens, clicks, replies, bounces, complaints and unsubscribes of a
campaign per variant, counted in Postgres from what Herald sent (`executor.messages`) and what it ingested
about those emails (`executor.message_events`, fed from herald.events.v1).

Each figure counts emails, not events: an email opened three times is one open. An event that names no
email (a reply without In-Reply-To, an unsubscribe) counts for the contact's latest email before it.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from herald_core.contracts import (
    ActionProposed,
    ConsentReason,
    ConsentWithdrawn,
    Contract,
    EmailEngagement,
    EmailReplied,
    FetchCampaignStatsInput,
    ReplyReceived,
)
from herald_core.tools import FetchCampaignStatsOutput, VariantStats

DEFAULT_VARIANT = "default"
KINDS = ("delivered", "opened", "clicked", "bounced", "complained", "replied", "unsubscribed")


async def record_sent(conn: asyncpg.Connection, action: ActionProposed, message_id: str) -> None:
    """An email left (called in the transaction that marks the action sent)."""
    await conn.execute(
        "INSERT INTO executor.messages(message_id, tenant, action_id, contact_id, campaign_id, variant) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
        message_id,
        action.tenant,
        action.action_id,
        action.contact.contact_id,
        action.campaign_id,
        action.variant,
    )


def _event_fields(body: Contract) -> tuple[str, str | None, str | None, str | None, datetime] | None:
    """(kind, message id, campaign, variant, when) of an event that counts, else None."""
    match body:
        case EmailEngagement():
            return body.kind.value, body.message_id, body.campaign_id, body.variant, body.occurred_at
        case EmailReplied():
            return "replied", body.in_reply_to, None, None, body.occurred_at
        case ReplyReceived() if not body.out_of_office:  # an autoresponder is not an answer
            return "replied", body.in_reply_to, None, None, body.occurred_at
        case ConsentWithdrawn() if body.reason is ConsentReason.UNSUBSCRIBE:
            return "unsubscribed", None, None, None, body.occurred_at
    return None


class CampaignStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_event(self, tenant: str, body: Contract) -> bool:
        """Keep an event about one of Herald's emails (once per upstream event); False if it does not count."""
        fields = _event_fields(body)
        if fields is None:
            return False
        kind, message_id, campaign_id, variant, occurred_at = fields
        assert isinstance(body, EmailEngagement | EmailReplied | ReplyReceived | ConsentWithdrawn)
        contact_id = body.contact.contact_id if isinstance(body, ReplyReceived) else body.contact_id
        await self.pool.execute(
            "INSERT INTO executor.message_events"
            "(event_key, tenant, contact_id, message_id, campaign_id, variant, kind, occurred_at) "
            "VALUES ($1, $2, $3, COALESCE($4, (SELECT message_id FROM executor.messages "
            "  WHERE tenant = $2 AND contact_id = $3 AND sent_at <= $8 ORDER BY sent_at DESC LIMIT 1)), "
            "$5, $6, $7, $8) ON CONFLICT (event_key) DO NOTHING",
            f"{body.upstream_source}:{body.upstream_event_id}:{kind}",
            tenant,
            contact_id,
            message_id,
            campaign_id,
            variant,
            kind,
            occurred_at,
        )
        return True

    async def fetch(self, tenant: str, query: FetchCampaignStatsInput) -> FetchCampaignStatsOutput:
        """The campaign's figures per variant, for emails sent within [since, until) when given."""
        rows = await self.pool.fetch(
            """
            WITH sent AS (
                SELECT message_id, COALESCE(variant, $4) AS variant FROM executor.messages
                WHERE tenant = $1 AND campaign_id = $2
                  AND ($5::timestamptz IS NULL OR sent_at >= $5) AND ($6::timestamptz IS NULL OR sent_at < $6)
            ),
            happened AS (
                SELECT DISTINCT COALESCE(e.variant, s.variant) AS variant, e.kind, e.message_id
                FROM executor.message_events e JOIN sent s ON s.message_id = e.message_id
                WHERE e.tenant = $1 AND (e.campaign_id IS NULL OR e.campaign_id = $2)
            )
            SELECT variant, 'sent' AS kind, count(*) AS n FROM sent GROUP BY variant
            UNION ALL
            SELECT variant, kind, count(*) FROM happened WHERE kind = ANY($3::text[]) GROUP BY variant, kind
            """,
            tenant,
            query.campaign_id,
            list(KINDS),
            DEFAULT_VARIANT,
            query.since,
            query.until,
        )
        counts: dict[str, dict[str, int]] = {}
        for row in rows:
            counts.setdefault(row["variant"], {})[row["kind"]] = row["n"]
        plural = {"sent": "sends", "delivered": "deliveries", "opened": "opens", "clicked": "clicks"}
        plural |= {
            "replied": "replies",
            "bounced": "bounces",
            "complained": "complaints",
            "unsubscribed": "unsubscribes",
        }
        variants = tuple(
            VariantStats(variant=variant, **{plural[kind]: n for kind, n in sorted(by_kind.items())})
            for variant, by_kind in sorted(counts.items())
        )
        return FetchCampaignStatsOutput(campaign_id=query.campaign_id, variants=variants)

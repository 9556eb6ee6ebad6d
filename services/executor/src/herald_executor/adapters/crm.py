"""update_crm_record's adapters: Herald's own contact store (Postgres schema `crm`, the default) and HubSpot's
CRM v3 API (`PATCH /crm/v3/objects/contacts/{id}` with a private app token), chosen per tenant (`crm.kind`).

Both are idempotent per action: the contact store records the action id in the same transaction as the
change (asked by `reconcile`), and a HubSpot PATCH that sets properties to given values changes nothing
when repeated — so an interrupted HubSpot call is simply run again.
"""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx

from herald_core import hubspot
from herald_core.bus import http_status_is_transient
from herald_core.contracts import ActionProposed, FailureKind, UpdateCrmRecordInput
from herald_core.secret_files import SecretFiles
from herald_core.tenants import TenantConfig
from herald_core.tools import UpdateCrmRecordOutput
from herald_executor.logic import Reconciled, ToolError

#: Herald's property names → HubSpot's internal names (`herald_next_step` and `herald_lead_score` are custom
#: properties the tenant adds: HubSpot's own `hubspotscore` is computed by HubSpot and cannot be written)
HUBSPOT_PROPERTIES = {
    "lifecycle_stage": "lifecyclestage",
    "lead_status": "hs_lead_status",
    "lead_score": "herald_lead_score",
    "job_title": "jobtitle",
    "company": "company",
    "industry": "industry",
    "next_step": "herald_next_step",
}


def _input(action: ActionProposed) -> UpdateCrmRecordInput:
    update = action.input
    assert isinstance(update, UpdateCrmRecordInput)
    if update.contact_id != action.contact.contact_id:
        # the approval covered this contact; the update must not land on another one
        raise ToolError(
            FailureKind.PERMANENT,
            "contact_mismatch",
            f"the update names contact {update.contact_id}, the action is for {action.contact.contact_id}",
        )
    return update


class HeraldCrm:
    """The contact store in Postgres: properties merged (null clears one), the action id kept with the change."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def update(self, action: ActionProposed) -> UpdateCrmRecordOutput:
        update = _input(action)
        changes = {key: value for key, value in update.properties.items() if value is not None}
        cleared = [key for key, value in update.properties.items() if value is None]
        async with self.pool.acquire() as conn, conn.transaction():
            first = await conn.fetchval(
                "INSERT INTO crm.writes(action_id, tenant, contact_id, properties) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (action_id) DO NOTHING RETURNING true",
                action.action_id,
                action.tenant,
                update.contact_id,
                json.dumps(update.properties),
            )
            if first:
                await conn.execute(
                    "INSERT INTO crm.contacts AS c (tenant, contact_id, properties) VALUES ($1, $2, $3::jsonb) "
                    "ON CONFLICT (tenant, contact_id) DO UPDATE "
                    "SET properties = (c.properties || $3::jsonb) - $4::text[], updated_at = now()",
                    action.tenant,
                    update.contact_id,
                    json.dumps(changes),
                    cleared,
                )
        return UpdateCrmRecordOutput(contact_id=update.contact_id, updated=tuple(update.properties), crm="herald")

    async def written(self, action: ActionProposed) -> UpdateCrmRecordOutput | None:
        row = await self.pool.fetchrow(
            "SELECT contact_id, properties FROM crm.writes WHERE action_id = $1", action.action_id
        )
        if row is None:
            return None
        return UpdateCrmRecordOutput(
            contact_id=row["contact_id"], updated=tuple(json.loads(row["properties"])), crm="herald"
        )


class HubSpotCrm:
    """HubSpot's CRM v3 contacts API. Its rate-limit headers are honoured before the next call (a spent
    interval waits until it rolls over) and a 429's wait is passed to the runner's backoff."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.secrets = SecretFiles()  # the token as its file holds it now: a rotation needs no restart
        self._not_before: dict[str, float] = {}  # per token: when HubSpot's interval allows the next call

    async def update(self, action: ActionProposed, tenant: TenantConfig) -> UpdateCrmRecordOutput:
        update = _input(action)
        crm = tenant.crm
        assert crm.hubspot_token_file is not None  # the tenant file's validation says so
        try:
            token = self.secrets.read(crm.hubspot_token_file)
        except OSError as exc:
            raise ToolError(FailureKind.PERMANENT, "crm_unauthorized", f"no HubSpot token: {exc}") from exc
        wait = self._not_before.get(token, 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        properties = {
            HUBSPOT_PROPERTIES[key]: ("" if value is None else value) for key, value in update.properties.items()
        }
        url = f"{crm.hubspot_base_url.rstrip('/')}/crm/v3/objects/contacts/{update.contact_id}"
        try:
            response = await self.client.patch(
                url, json={"properties": properties}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.ConnectError as exc:
            raise ToolError(FailureKind.RETRYABLE, "crm_unavailable", f"HubSpot unreachable: {exc!r}") from exc
        except httpx.TransportError as exc:
            # the request may have landed; setting the same values again changes nothing, so retrying is safe
            raise ToolError(FailureKind.RETRYABLE, "crm_unavailable", f"HubSpot call broke off: {exc!r}") from exc
        pause = hubspot.interval_pause(response.headers)
        if pause is not None:
            self._not_before[token] = time.monotonic() + pause
        if response.status_code == 200:
            return UpdateCrmRecordOutput(contact_id=update.contact_id, updated=tuple(update.properties), crm="hubspot")
        detail = hubspot.error_message(response.text)
        if response.status_code == 429:
            raise ToolError(
                FailureKind.RETRYABLE,
                "crm_rate_limited",
                f"HubSpot 429: {detail}",
                retry_after=hubspot.rate_limited_wait(response.headers),
            )
        if http_status_is_transient(response.status_code):
            raise ToolError(FailureKind.RETRYABLE, "crm_unavailable", f"HubSpot {response.status_code}: {detail}")
        code = {401: "crm_unauthorized", 403: "crm_unauthorized", 404: "crm_contact_not_found"}.get(
            response.status_code, "crm_rejected"
        )
        raise ToolError(FailureKind.PERMANENT, code, f"HubSpot {response.status_code}: {detail}")


class CrmTool:
    """update_crm_record: the tenant's CRM adapter."""

    tool = "update_crm_record"

    def __init__(self, herald: HeraldCrm, hubspot: HubSpotCrm) -> None:
        self.herald = herald
        self.hubspot = hubspot

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> UpdateCrmRecordOutput:
        if tenant.crm.kind == "hubspot":
            return await self.hubspot.update(action, tenant)
        return await self.herald.update(action)

    async def reconcile(
        self, action: ActionProposed, tenant: TenantConfig
    ) -> tuple[Reconciled, UpdateCrmRecordOutput | None]:
        if tenant.crm.kind == "hubspot":
            return Reconciled.SAFE_TO_RUN, None  # the same PATCH again is the same record
        written = await self.herald.written(action)
        return (Reconciled.DONE, written) if written else (Reconciled.SAFE_TO_RUN, None)

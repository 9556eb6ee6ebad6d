"""update_crm_record's adapters: Herald's own contact store (Postgres schema `crm`, the default) and HubSpot's
CRM v3 API (`PATCH /crm/v3/objects/contacts/{id}` with a private app token), chosen per tenant (`crm.kind`).

Both are idempotent per action: the contact store records the action id in the same transaction as the
change (asked by `reconcile`), and a HubSpot PATCH that sets properties to given values changes nothing
when repeated — so an interrupted HubSpot call is simply run again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import asyncpg
import httpx

from herald_core import hubspot
from herald_core.bus import http_status_is_transient
from herald_core.contracts import ActionProposed, CreateContactInput, FailureKind, UpdateCrmRecordInput
from herald_core.secret_files import SecretFiles
from herald_core.tenants import TenantConfig
from herald_core.tools import CreateContactOutput, UpdateCrmRecordOutput
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


def _new_contact(action: ActionProposed) -> CreateContactInput:
    spec = action.input
    assert isinstance(spec, CreateContactInput)
    if spec.referred_by != action.contact.contact_id:
        # the approval covered a referral by this contact; the new contact must be the one it named
        raise ToolError(
            FailureKind.PERMANENT,
            "contact_mismatch",
            f"the referral names contact {spec.referred_by}, the action is for {action.contact.contact_id}",
        )
    return spec


def _created(spec: CreateContactInput, contact_id: str, created: bool, crm: str) -> CreateContactOutput:
    return CreateContactOutput(
        contact_id=contact_id,
        created=created,
        crm=crm,  # type: ignore[arg-type]
        email=spec.email,
        first_name=spec.first_name,
        last_name=spec.last_name,
        company=spec.company,
        referred_by=spec.referred_by,
    )


class HeraldContacts:
    """create_contact in the contact store in Postgres: one new contact per action (its id from the action id),
    or the one that holds the address already."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, action: ActionProposed) -> CreateContactOutput:
        spec = _new_contact(action)
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchval(
                "SELECT contact_id FROM crm.contacts WHERE tenant = $1 AND lower(properties->>'email') = lower($2) "
                "ORDER BY contact_id LIMIT 1",
                action.tenant,
                spec.email,
            )
            contact_id = existing or f"h{action.action_id.lower()}"
            output = _created(spec, contact_id, existing is None, "herald")
            first = await conn.fetchval(
                "INSERT INTO crm.writes(action_id, tenant, contact_id, properties) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (action_id) DO NOTHING RETURNING true",
                action.action_id,
                action.tenant,
                contact_id,
                output.model_dump_json(),
            )
            if first and existing is None:
                properties = {
                    "email": spec.email,
                    "first_name": spec.first_name,
                    "last_name": spec.last_name,
                    "company": spec.company,
                    "referred_by": spec.referred_by,
                    "lifecycle_stage": "lead",
                }
                await conn.execute(
                    "INSERT INTO crm.contacts(tenant, contact_id, properties) VALUES ($1, $2, $3::jsonb) "
                    "ON CONFLICT (tenant, contact_id) DO NOTHING",
                    action.tenant,
                    contact_id,
                    json.dumps({k: v for k, v in properties.items() if v is not None}),
                )
        return await self.written(action) or output

    async def written(self, action: ActionProposed) -> CreateContactOutput | None:
        stored = await self.pool.fetchval(
            "SELECT properties::text FROM crm.writes WHERE action_id = $1", action.action_id
        )
        return CreateContactOutput.model_validate_json(stored) if stored else None


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

    async def create(self, action: ActionProposed, tenant: TenantConfig) -> CreateContactOutput:
        """POST a new contact; HubSpot keeps one contact per address and answers a known one with 409 CONFLICT
        naming it, so a repeat (after a crash, a retry) finds the contact the first call made."""
        spec = _new_contact(action)
        crm = tenant.crm
        assert crm.hubspot_token_file is not None
        try:
            token = self.secrets.read(crm.hubspot_token_file)
        except OSError as exc:
            raise ToolError(FailureKind.PERMANENT, "crm_unauthorized", f"no HubSpot token: {exc}") from exc
        properties = {
            "email": spec.email,
            "firstname": spec.first_name,
            "lastname": spec.last_name,
            "company": spec.company,
            "lifecyclestage": "lead",
            "herald_referred_by": spec.referred_by,
        }
        url = f"{crm.hubspot_base_url.rstrip('/')}/crm/v3/objects/contacts"
        try:
            response = await self.client.post(
                url,
                json={"properties": {k: v for k, v in properties.items() if v is not None}},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError as exc:  # a repeat finds the contact by its address (409): safe to retry
            raise ToolError(FailureKind.RETRYABLE, "crm_unavailable", f"HubSpot unreachable: {exc!r}") from exc
        if response.status_code == 201:
            return _created(spec, str(response.json()["id"]), True, "hubspot")
        detail = hubspot.error_message(response.text)
        existing = re.search(r"Existing ID: (\d+)", detail) if response.status_code == 409 else None
        if existing is not None:
            return _created(spec, existing.group(1), False, "hubspot")
        if response.status_code == 429:
            wait = hubspot.rate_limited_wait(response.headers)
            raise ToolError(FailureKind.RETRYABLE, "crm_rate_limited", f"HubSpot 429: {detail}", retry_after=wait)
        if http_status_is_transient(response.status_code):
            raise ToolError(FailureKind.RETRYABLE, "crm_unavailable", f"HubSpot {response.status_code}: {detail}")
        code = {401: "crm_unauthorized", 403: "crm_unauthorized"}.get(response.status_code, "crm_rejected")
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


class ContactTool:
    """create_contact: a new contact (a referral) in the tenant's CRM."""

    tool = "create_contact"

    def __init__(self, herald: HeraldContacts, hubspot: HubSpotCrm) -> None:
        self.herald = herald
        self.hubspot = hubspot

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> CreateContactOutput:
        if tenant.crm.kind == "hubspot":
            return await self.hubspot.create(action, tenant)
        return await self.herald.create(action)

    async def reconcile(
        self, action: ActionProposed, tenant: TenantConfig
    ) -> tuple[Reconciled, CreateContactOutput | None]:
        if tenant.crm.kind == "hubspot":
            return Reconciled.SAFE_TO_RUN, None  # the same POST again finds the contact it made (409)
        written = await self.herald.written(action)
        return (Reconciled.DONE, written) if written else (Reconciled.SAFE_TO_RUN, None)

"""The planner's port to ingest's contact store: `POST /v1/segments/<tenant>`, the contacts of a segment.

Services never read each other's tables: the contact store is ingest's, so a campaign task asks it, with the
planner's service token (ingest answers segments to the planner only).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from herald_core.auth.services import ServiceKeys
from herald_core.contracts import ContactFacts, SegmentFilter
from herald_core.tenants import TenantConfig


@dataclass(frozen=True)
class Segment:
    matched: int  # every contact the store holds that matches (seniority aside)
    contacts: tuple[ContactFacts, ...]  # the first `limit` by id
    truncated: bool


class SegmentsUnavailable(Exception):
    """Ingest could not answer now (down, 5xx, a timeout): ask again later."""


class SegmentRefused(Exception):
    """Ingest refused the question itself (4xx): asking again changes nothing. `detail` is its answer."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(f"the contact store refused the segment (HTTP {status}): {detail}"[:1000])
        self.status = status
        self.detail = detail


class IngestSegments:
    def __init__(self, base_url: str, timeout_seconds: float, keys: ServiceKeys) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_seconds)
        self.keys = keys  # ingest's contact store answers segments only to the planner

    def _headers(self, tenant: TenantConfig) -> dict[str, str]:
        del tenant
        return {"Authorization": f"Bearer {self.keys.token('ingest')}"}

    async def matching(self, tenant: TenantConfig, segment: SegmentFilter) -> Segment:
        try:
            response = await self.client.post(
                f"/v1/segments/{tenant.tenant_id}",
                json=segment.model_dump(mode="json"),
                headers=self._headers(tenant),
            )
        except httpx.HTTPError as exc:
            raise SegmentsUnavailable(f"ingest did not answer: {exc!r}"[:500]) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise SegmentsUnavailable(f"ingest answered {response.status_code}")
        if not response.is_success:
            try:
                detail: object = response.json()
            except ValueError:
                detail = response.text[:500]
            raise SegmentRefused(response.status_code, detail)
        body = response.json()
        return Segment(
            matched=int(body["matched"]),
            contacts=tuple(ContactFacts.model_validate(c) for c in body["contacts"]),
            truncated=bool(body["truncated"]),
        )

    async def close(self) -> None:
        await self.client.aclose()

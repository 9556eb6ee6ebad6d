"""The live policy of every tenant, from the compacted `herald.policy.v1`.

At start the guard reads the topic from its beginning to its end before it decides anything, then
follows it: a valid policy with a higher version replaces the tenant's live one within a fetch,
on every replica, without a restart. A policy that does not load (its problems have line
numbers) or whose version is not above the live one is refused and logged, and the live one
stays. A tenant that never published a policy gets the one its configuration implies
(`herald_core.policy.default_policy`).

A publication in `shadow` mode becomes the tenant's shadow policy: the guard decides every action
under it too, records where it would have decided otherwise, and enforces only the live one. A
newer shadow replaces it; the same text applied live ends it (it was promoted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from prometheus_client import Counter, Gauge

from herald_core.bus import Rejected, TopicFollower, Unreadable, read_record
from herald_core.contracts import PolicyPublished
from herald_core.observability import get_logger
from herald_core.policy import Policy, PolicyRefused, admit, default_policy
from herald_core.settings import CommonSettings
from herald_core.tenants import TenantConfig
from herald_core.topics import POLICY

POLICIES = Counter("herald_guard_policies_total", "Published policies read, by outcome.", ["outcome"])
LIVE_VERSION = Gauge("herald_guard_policy_version", "The live policy version number, by tenant.", ["tenant"])
log = get_logger("herald.guard.policies")


@dataclass
class Refusal:
    version: int | None
    reason: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class PolicyBook(TopicFollower):
    def __init__(self, common: CommonSettings) -> None:
        self._live: dict[str, Policy] = {}
        self._shadow: dict[str, Policy] = {}
        self._defaults: dict[str, tuple[TenantConfig, Policy]] = {}  # tenant → (the configuration, its policy)
        self.refusals: dict[str, list[Refusal]] = {}
        # the whole history first (at start): no decision is made under a policy older than the published one
        super().__init__(common, POLICY, self._apply, "guard-policy-book", service="guard")

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        read = read_record(record, POLICY)
        if isinstance(read, Unreadable):
            POLICIES.labels("unreadable").inc()
            raise Rejected(read.reason)  # the follower dead-letters it; the live policy stays
        published = read.body
        if not isinstance(published, PolicyPublished):
            return
        if published.mode == "shadow":
            self._apply_shadow(published, read.envelope.tenant)
            return
        try:
            policy = admit(published, read.envelope.tenant, self._live.get(published.tenant))
        except PolicyRefused as exc:
            self._refuse(published.tenant, published.version, str(exc))
            return
        if policy is None:
            return
        self._live[policy.tenant] = policy
        if (shadow := self._shadow.get(policy.tenant)) is not None and shadow.sha256 == policy.sha256:
            del self._shadow[policy.tenant]  # promoted: nothing left to compare
        LIVE_VERSION.labels(policy.tenant).set(policy.document.version)
        POLICIES.labels("applied").inc()
        log.info(
            "policy applied", tenant=policy.tenant, policy_version=policy.version, published_by=published.published_by
        )

    def _apply_shadow(self, published: PolicyPublished, envelope_tenant: str) -> None:
        try:
            policy = admit(published, envelope_tenant, self._shadow.get(published.tenant))
        except PolicyRefused as exc:
            self._refuse(published.tenant, published.version, f"shadow: {exc}")
            return
        if policy is not None:
            self._shadow[policy.tenant] = policy
            POLICIES.labels("shadowed").inc()
            log.info("shadow policy applied", tenant=policy.tenant, policy_version=policy.version)

    def shadow(self, tenant: str) -> Policy | None:
        """The policy decided beside the live one for `tenant`, if one is being tried."""
        return self._shadow.get(tenant)

    def _refuse(self, tenant: str, version: int | None, reason: str) -> None:
        POLICIES.labels("refused").inc()
        log.error("policy refused; the live one stays", tenant=tenant, version=version, reason=reason[:2000])
        self.refusals.setdefault(tenant, []).append(Refusal(version, reason[:4000]))
        del self.refusals[tenant][:-20]

    def for_tenant(self, tenant: TenantConfig) -> Policy:
        """The tenant's live policy, or the one its configuration implies."""
        live = self._live.get(tenant.tenant_id)
        if live is not None:
            return live
        cached = self._defaults.get(tenant.tenant_id)
        if cached is None or cached[0] != tenant:
            cached = (tenant, default_policy(tenant))
            self._defaults[tenant.tenant_id] = cached
        return cached[1]

    def published(self, tenant: str) -> Policy | None:
        return self._live.get(tenant)

"""Roles per tenant and what each allows (pure: no I/O).

A tenant file's `access:` section names who holds each role, as subjects (the email or `sub` a person signs in
with) or `group:<name>` (a group their identity provider or proxy reports):

    access:
      reviewer: ["group:acme-marketing"]        # reads the queue, audit and explain; decides ordinary items
      approver: ["group:acme-leads"]            # also decides high-risk items (two of them, four eyes)
      admin: ["ops@acme.example"]               # the tenant's kill switch and policy
      owner: "maya@acme.example"                # the last step of every escalation

A tenant without the section grants nothing: fail closed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

GROUP = "group:"

Member = Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=r"^[^\s,]+$")]


class Role(enum.StrEnum):
    REVIEWER = "reviewer"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    READ = "read"  # the queue, items, the audit, explain, the policy in force
    DECIDE = "decide"  # approve, reject, resolve an ordinary item
    DECIDE_HIGH_RISK = "decide_high_risk"  # approve a high-risk item (one of its two approvals)
    ADMINISTER = "administer"  # the kill switch, the policy, autonomy resets


#: which roles carry each permission: an approver can do all a reviewer can; an admin can read but decides nothing
GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.READ: frozenset(Role),
    Permission.DECIDE: frozenset({Role.REVIEWER, Role.APPROVER}),
    Permission.DECIDE_HIGH_RISK: frozenset({Role.APPROVER}),
    Permission.ADMINISTER: frozenset({Role.ADMIN}),
}


class Access(BaseModel):
    """Who holds which role for one tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reviewer: tuple[Member, ...] = Field(default=(), description="Reviewers: subjects or `group:<name>`.")
    approver: tuple[Member, ...] = Field(default=(), description="Approvers of high-risk items.")
    admin: tuple[Member, ...] = Field(default=(), description="Admins: the tenant's kill switch and policy.")
    owner: Member | None = Field(default=None, description="The tenant's owner, the last step of an escalation.")

    def members(self, role: Role) -> tuple[str, ...]:
        members: tuple[str, ...] = getattr(self, role.value)
        return members


@dataclass(frozen=True)
class Caller:
    """Someone authenticated: a person (by token or proxy) or one of Herald's services."""

    subject: str
    via: Literal["token", "proxy", "service"]
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def service(self) -> str | None:
        return self.subject.removeprefix("service:") if self.via == "service" else None

    def is_one_of(self, members: Iterable[str]) -> bool:
        if self.via == "service":
            return False  # a service holds no person's role
        for member in members:
            if member.startswith(GROUP):
                if member.removeprefix(GROUP) in self.groups:
                    return True
            elif member.casefold() == self.subject.casefold():
                return True
        return False


class AccessDenied(Exception):
    """Why a caller may not do something: `status` 401 (not known) or 403 (known, not allowed)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def roles_of(caller: Caller, access: Access | None) -> frozenset[Role]:
    if access is None:
        return frozenset()
    return frozenset(role for role in Role if caller.is_one_of(access.members(role)))


def may(caller: Caller, access: Access | None, permission: Permission) -> bool:
    return bool(roles_of(caller, access) & GRANTS[permission])


def require(caller: Caller, tenant: str, access: Access | None, permission: Permission) -> None:
    """Raise 403 unless the caller holds a role granting `permission` for `tenant`."""
    if not may(caller, access, permission):
        roles = " or ".join(sorted(r.value for r in GRANTS[permission]))
        raise AccessDenied(403, "forbidden", f"{caller.subject} is not a {roles} of tenant {tenant}")

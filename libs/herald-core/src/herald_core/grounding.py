"""A client of the retrieval service's grounding API (gRPC `herald.v1.Retrieval/Ground`), for the guard
and for `herald policy backtest`.

The guard asks only when the tenant's policy has a grounding rule. An outage (unavailable, deadline)
is transient: the proposal is read again later rather than decided without the check. Any
other refusal becomes a grounding result that says so, and the rule fails closed on it.
"""

from __future__ import annotations

import grpc

from herald_core.auth.services import ServiceKeys, service_channel
from herald_core.bus import TransientError
from herald_core.contracts import ActionProposed
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.policy import Grounding, UnsupportedClaim

RETRIEVAL = "retrieval"
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


class GroundingClient:
    def __init__(self, target: str, timeout: float, keys: ServiceKeys) -> None:
        # every call carries the caller's service token: retrieval answers only Herald's services
        self.channel = service_channel(target, keys, RETRIEVAL)
        self.stub = retrieval_pb2_grpc.RetrievalStub(self.channel)  # type: ignore[no-untyped-call]  # generated
        self.timeout = timeout

    async def check(self, action: ActionProposed) -> Grounding:
        """Every claim of the draft (subject and body) against the evidence passages the planner attached."""
        request = retrieval_pb2.GroundRequest(
            tenant=action.tenant,
            draft="\n\n".join(action.text),
            evidence_ids=[e.chunk_id for e in action.evidence],
        )
        try:
            response = await self.stub.Ground(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT:
                raise TransientError(f"grounding unavailable: {exc.code().name}") from exc
            return Grounding(error=f"{exc.code().name}: {exc.details()}")
        return Grounding(
            unsupported=tuple(
                UnsupportedClaim(kind=c.kind, text=c.text, reason=c.reason) for c in response.claims if not c.supported
            ),
            claims=len(response.claims),
            unknown_evidence=tuple(response.unknown_evidence_ids),
        )

    async def close(self) -> None:
        await self.channel.close()

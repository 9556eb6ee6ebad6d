"""The planner's port to the retrieval service (gRPC `herald.v1.Retrieval`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from herald_core.auth.services import ServiceKeys, service_channel
from herald_core.contracts import EvidenceRef, MemoryRef
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc


@dataclass(frozen=True)
class SearchVerdict:
    """A search's passages and whether the knowledge base answers the query at all.

    `answerable` False means the passages are only the nearest the knowledge base holds: a question asked
    of them should go to a person, not be answered from them.
    """

    evidence: list[EvidenceRef]
    answerable: bool
    score: float  # the calibrated probability that the knowledge base answers the query, 0..1
    threshold: float  # the probability at or above which it counts as answerable
    reason: str
    features: dict[str, float] = field(default_factory=dict)


class RetrievalClient:
    def __init__(self, target: str, timeout: float, keys: ServiceKeys) -> None:
        # every call carries the planner's service token: retrieval answers only Herald's services
        self.channel = service_channel(target, keys, "retrieval")
        self.stub = retrieval_pb2_grpc.RetrievalStub(self.channel)
        self.timeout = timeout

    async def search(self, tenant: str, query: str, k: int, collections: list[str] | None = None) -> list[EvidenceRef]:
        return (await self.search_with_verdict(tenant, query, k, collections)).evidence

    async def search_with_verdict(
        self, tenant: str, query: str, k: int, collections: list[str] | None = None
    ) -> SearchVerdict:
        """The passages, and whether the knowledge base answers `query` (`SearchVerdict.answerable`)."""
        request = retrieval_pb2.SearchRequest(
            tenant=tenant, query=query, k=k, filters=retrieval_pb2.SearchFilters(collections=collections or [])
        )
        response = await self.stub.Search(request, timeout=self.timeout)
        evidence = [
            EvidenceRef(
                chunk_id=p.chunk_id, doc_id=p.doc_id, title=p.title, score=round(p.score, 4), quote=p.text[:2000]
            )
            for p in response.passages
        ]
        return SearchVerdict(
            evidence=evidence,
            answerable=response.answerable,
            score=round(response.answerable_score, 4),
            threshold=round(response.answerable_threshold, 4),
            reason=response.answerable_reason,
            features={name: round(value, 4) for name, value in response.answerable_features.items()},
        )

    async def recall(self, tenant: str, contact_id: str, query: str, k: int) -> list[MemoryRef]:
        request = retrieval_pb2.RecallRequest(tenant=tenant, contact_id=contact_id, query=query, k=k)
        response = await self.stub.Recall(request, timeout=self.timeout)
        return [
            MemoryRef(
                memory_id=m.memory_id,
                tier=m.tier,  # type: ignore[arg-type]
                kind=m.kind,
                text=m.text[:2000],
                occurred_at=datetime.fromisoformat(m.occurred_at),
                score=round(m.score, 4),
            )
            for m in response.memories
        ]

    async def resemble(self, text: str, examples: list[tuple[str, str]]) -> dict[str, float]:
        """How close `text` is to each label's examples (the best cosine per label)."""
        request = retrieval_pb2.ResembleRequest(
            text=text[:10_000], examples=[retrieval_pb2.LabelledText(label=label, text=t) for label, t in examples]
        )
        response = await self.stub.Resemble(request, timeout=self.timeout)
        return {s.label: round(s.score, 4) for s in response.scores}

    async def close(self) -> None:
        await self.channel.close()

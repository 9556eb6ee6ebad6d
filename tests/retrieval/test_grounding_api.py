"""The grounding API on the real stack: claims of a draft checked against the evidence passages it cites."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.e2e]

KB = Path(__file__).resolve().parents[2] / "samples" / "acme" / "kb"


@pytest.fixture(scope="module")
def tenant(herald, tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"gr{secrets.token_hex(3)}", products=["Acme Relay", "Growth", "Starter"], competitors=["Opsly", "Flowtide"]
    )
    directory = tmp_path_factory.mktemp("kb")
    for name in ("pricing", "competitors"):
        (directory / name).mkdir()
        for source in (KB / name).glob("*.md"):
            (directory / name / source.name).write_text(source.read_text())
    herald.load_kb(tenant, directory)
    return tenant


@pytest.fixture
async def stub(herald) -> AsyncIterator[retrieval_pb2_grpc.RetrievalStub]:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        yield retrieval_pb2_grpc.RetrievalStub(channel)


async def evidence(stub: retrieval_pb2_grpc.RetrievalStub, tenant: str, query: str, k: int = 3) -> list[str]:
    response = await stub.Search(retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=k))
    return [p.chunk_id for p in response.passages]


async def test_an_invented_discount_is_flagged_and_a_supported_price_passes(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    ids = await evidence(stub, tenant, "Growth plan price per seat per month")
    draft = (
        "Hi Dana, Growth is $49 per seat per month and covers unlimited workflows. "
        "Sign this week and take 25% off your first year."
    )
    response = await stub.Ground(retrieval_pb2.GroundRequest(tenant=tenant, draft=draft, evidence_ids=ids))
    by_value = {c.value: c for c in response.claims}
    assert by_value["USD 49"].supported and by_value["USD 49"].passage_id.startswith("pricing/plans#")
    assert not by_value["25%"].supported and "25%" in by_value["25%"].reason
    assert not response.grounded
    for claim in response.claims:
        assert draft[claim.start : claim.end] == claim.text


async def test_the_annual_saving_is_supported_by_the_discount_policy(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    ids = await evidence(stub, tenant, "annual billing discount")
    draft = "Paying annually saves 15% on Growth."
    response = await stub.Ground(retrieval_pb2.GroundRequest(tenant=tenant, draft=draft, evidence_ids=ids))
    assert response.grounded, [(c.value, c.reason) for c in response.claims]
    assert {c.kind for c in response.claims} >= {"percentage", "product"}


async def test_competitor_statements_must_restate_the_note(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    ids = await evidence(stub, tenant, "Opsly integrations comparison", k=5)
    fair = "Opsly integrates with about 40 systems, while Acme Relay has over 180 integrations."
    invented = "Most Opsly customers are switching to Acme Relay this year."
    for draft, supported in ((fair, True), (invented, False)):
        response = await stub.Ground(retrieval_pb2.GroundRequest(tenant=tenant, draft=draft, evidence_ids=ids))
        competitor = [c for c in response.claims if c.kind == "competitor"]
        assert competitor and competitor[0].supported is supported, (draft, competitor)


async def test_evidence_the_tenant_does_not_have_supports_nothing(stub, herald, tenant) -> None:  # type: ignore[no-untyped-def]
    other = herald.add_tenant(f"gr{secrets.token_hex(3)}", products=["Growth"])
    ids = await evidence(stub, tenant, "Growth plan price per seat per month")
    draft = "Growth is $49 per seat per month."
    # the same chunk ids, asked for by another tenant: they are not that tenant's passages
    response = await stub.Ground(retrieval_pb2.GroundRequest(tenant=other, draft=draft, evidence_ids=ids))
    assert not response.grounded
    assert sorted(response.unknown_evidence_ids) == sorted(ids)


async def test_bad_grounding_requests_get_a_clear_error(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    for request, code in (
        (retrieval_pb2.GroundRequest(tenant=tenant, draft="  "), grpc.StatusCode.INVALID_ARGUMENT),
        (retrieval_pb2.GroundRequest(tenant="Bad Tenant!", draft="x"), grpc.StatusCode.INVALID_ARGUMENT),
        (retrieval_pb2.GroundRequest(tenant="nosuchtenant", draft="Growth"), grpc.StatusCode.NOT_FOUND),
        (retrieval_pb2.GroundRequest(tenant=tenant, draft="x" * 50_001), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Ground(request)
        assert error.value.code() == code

"""`Resemble` on the real retrieval service: a text placed among labelled examples by their sentence embeddings,
what the planner's offline reading of a reply leans on; bad requests refused with the reason. Then the planner's
whole offline reading (rules, then similarity) through that service on the project's reply table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import grpc
import pytest

from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_ingest.replies import read_reply
from herald_planner.adapters.retrieval import RetrievalClient
from herald_planner.intents import Intent, classify_offline, examples, with_similarity

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.e2e]

REPLIES = Path(__file__).resolve().parents[1] / "planner" / "replies"
NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


@pytest.fixture
async def stub(herald) -> AsyncIterator[retrieval_pb2_grpc.RetrievalStub]:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        yield retrieval_pb2_grpc.RetrievalStub(channel)


@pytest.fixture
async def client(herald) -> AsyncIterator[RetrievalClient]:  # type: ignore[no-untyped-def]
    retrieval = RetrievalClient(herald.services.retrieval_target, 30, herald.service_keys("planner"))
    yield retrieval
    await retrieval.close()


def _labelled(*pairs: tuple[str, str]) -> list[retrieval_pb2.LabelledText]:
    return [retrieval_pb2.LabelledText(label=label, text=text) for label, text in pairs]


async def test_a_text_is_closest_to_the_label_whose_examples_say_the_same(stub) -> None:  # type: ignore[no-untyped-def]
    request = retrieval_pb2.ResembleRequest(
        text="Could we book a call on Thursday afternoon?",
        examples=_labelled(
            ("meeting", "Can we schedule a meeting next week?"),
            ("meeting", "Send me an invite."),
            ("stop", "Please stop emailing me."),
        ),
    )
    response = await stub.Resemble(request)
    assert [s.label for s in response.scores] == ["meeting", "stop"]  # one per label, the closest first
    assert -1.0 <= response.scores[1].score < response.scores[0].score <= 1.0


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"text": " ", "examples": [("a", "x")]}, "text is empty"),
        ({"text": "x" * 10_001, "examples": [("a", "x")]}, "text over 10,000 characters"),
        ({"text": "hello", "examples": []}, "between 1 and 500 examples"),
        ({"text": "hello", "examples": [("", "x")]}, "every example needs a label"),
        ({"text": "hello", "examples": [("a", "x" * 2001)]}, "every example needs a label"),
    ],
)
async def test_a_bad_request_is_refused_with_its_reason(stub, request_fields, reason) -> None:  # type: ignore[no-untyped-def]
    request = retrieval_pb2.ResembleRequest(
        text=request_fields["text"], examples=_labelled(*request_fields["examples"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Resemble(request)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(reason)


def _table() -> list[tuple[str, str, str]]:
    rows = []
    for path in sorted(REPLIES.glob("*.eml")):
        raw = path.read_bytes()
        expected = str(BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["X-Herald-Expected-Intent"])
        rows.append((path.name, expected, read_reply(raw, NOW).text))
    return rows


async def test_the_offline_reading_with_similarity_reads_every_reply_of_the_table(client) -> None:  # type: ignore[no-untyped-def]
    wrong, similar_alone = [], 0
    english = [row for row in _table() if row[1] != Intent.OUT_OF_OFFICE.value]
    for name, expected, text in english:
        scores = await client.resemble(text, examples())
        similar_alone += max(scores, key=lambda label: scores[label]) == expected
        found = with_similarity(classify_offline(text, today=NOW.date()), scores)
        if found.intent.value != expected or found.confidence < 0.6:
            wrong.append((name, found))
    assert not wrong, wrong
    # the embeddings alone (MiniLM reads English; the table's German and French replies are left to the rules)
    assert similar_alone >= 0.75 * len(english), (similar_alone, len(english))


async def test_similarity_names_the_intent_of_a_reply_no_rule_reads(client) -> None:  # type: ignore[no-untyped-def]
    text = "Please quit writing to this address."
    assert classify_offline(text, today=NOW.date()).intent is Intent.UNCLEAR
    found = with_similarity(classify_offline(text, today=NOW.date()), await client.resemble(text, examples()))
    assert found.intent is Intent.UNSUBSCRIBE and found.classifier == "rules+similarity"

"""generate_image end to end: a signed approval becomes a branded PNG in the tenant's asset store, read back
with Pillow (size, brand colour, the "generated" label), reported with its SHA-256; the same approval
presented again is refused as a replay and the file is not written twice. A tenant configured for a hosted
model gets that model's picture (a loopback server speaking OpenAI's Images API), fitted and labelled the same
way; the model is asked once per action, through its rate limits, and its safety refusals fail for good."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from herald_core.contracts import ActionApproved, ActionExecuted, ActionProposed, ActionRefused
from herald_core.signing import load_signer
from herald_core.topics import APPROVED_ACTION, EXECUTED, contact_key
from loopback_images import images_api
from support import (
    approve,
    email_action,
    envelope,
    execution_of,
    executor_answers,
    present,
    publish,
    read_topic,
    tool_action,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def test_an_approved_image_is_rendered_once_in_the_brand_and_labelled_generated(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"img{secrets.token_hex(3)}", brand={"palette": ["#123456", "#FFFFFF", "#FF8800"], "wordmark": "Acme"}
    )
    contact_id = f"c{secrets.token_hex(3)}"
    base = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example")
    action = ActionProposed.model_validate(
        {
            **base.model_dump(mode="json"),
            "tool": "generate_image",
            "input": {"template": "banner", "headline": "Carrier exceptions, handled", "subhead": "62% faster"},
        }
    )
    signer = load_signer(herald.keys_dir / "guard-local-1.pem", "guard-local-1")
    approval = signer.approve(action, approved_by="guard", policy_version="test", ttl=timedelta(minutes=10))
    approved = ActionApproved(action=action, approval=approval, rules=())
    key = contact_key(tenant, contact_id)

    async def present() -> None:  # the approval, as the guard publishes it
        env = envelope(tenant, approved, source="herald/guard")
        await publish(herald.bootstrap, herald.prefix, APPROVED_ACTION, key, env, approved)

    await present()

    def about(records, model):  # type: ignore[no-untyped-def]
        return [
            model.model_validate_json(r.value)
            for r in records
            if r.type == model.TYPE and action.action_id.encode() in (r.value or b"")
        ]

    records = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=60, until=lambda rs: bool(about(rs, ActionExecuted))
    )
    (executed,) = about(records, ActionExecuted)
    assert executed.status.value == "succeeded", executed
    path = Path(executed.result["path"])
    stored = _stored(path)
    assert stored["sha256"] == executed.result["sha256"] and executed.result["generated"] is True
    assert stored["size"] == (1200, 628) and stored["format"] == "PNG"
    assert stored["info"]["Generated"] == "true" and stored["info"]["HeraldAction"] == action.action_id
    assert stored["corner"] == (0x12, 0x34, 0x56)  # the brand's background

    # the same approval again (a replay): refused, nothing rendered
    await present()
    records = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=60, until=lambda rs: bool(about(rs, ActionRefused))
    )
    (refused,) = about(records, ActionRefused)
    assert refused.reason == "replayed"
    assert _stored(path)["written"] == stored["written"] and len(about(records, ActionExecuted)) == 1


async def test_a_hosted_model_draws_an_approved_image_once_fitted_and_labelled(herald, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = f"sk-proj-{secrets.token_hex(12)}"
    (tmp_path / "images-key").write_text(token + "\n")
    async with images_api(token) as api:
        tenant = herald.add_tenant(
            f"himg{secrets.token_hex(3)}",
            brand={"palette": ["#123456", "#FFFFFF", "#FF8800"], "wordmark": "Acme", "voice": "calm and plain"},
            images={
                "kind": "hosted",
                "base_url": api.url,
                "model": "gpt-image-1",
                "token_file": str(tmp_path / "images-key"),
            },
        )

        def image(headline: str) -> ActionApproved:
            spec = {"template": "banner", "headline": headline, "subhead": "62% faster"}
            return approve(herald, tool_action(tenant, "generate_image", spec, contact_id=f"c{secrets.token_hex(3)}"))

        # rate limited (its wait honoured), then an outage, then the picture: drawn once, stored fitted and labelled
        api.fail_next(429, 503)
        approved = image("Carrier exceptions, handled")
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "succeeded", executed
        assert api.statuses() == [429, 503, 200]
        path = Path(executed.result["path"])
        stored = _stored(path)
        assert stored["sha256"] == executed.result["sha256"] and executed.result["generated"] is True
        assert stored["size"] == (1200, 628) and stored["format"] == "PNG"
        assert executed.result["width"] == 1200 and executed.result["height"] == 628
        assert stored["info"]["Generated"] == "true" and stored["info"]["HeraldAction"] == approved.action.action_id
        assert stored["info"]["Generator"] == "Herald generate_image (hosted gpt-image-1)"
        assert stored["corner"] == api.colour  # the model's picture, not the template's background
        assert (0x12, 0x34, 0x56) in stored["label_box"]  # the corner label, on a box in the brand's background
        drawn = api.requests[-1]
        assert drawn["auth"] == f"Bearer {token}"
        assert (drawn["body"]["model"], drawn["body"]["size"]) == ("gpt-image-1", "1536x1024")
        assert '"Carrier exceptions, handled"' in drawn["body"]["prompt"] and "#123456" in drawn["body"]["prompt"]

        # the same approval again: refused as a replay; the model is not asked again, the file not rewritten
        await present(herald, approved)
        answers = await executor_answers(herald, approved.action.action_id, count=2)
        assert [type(a).__name__ for a in answers] == ["ActionExecuted", "ActionRefused"]
        assert isinstance(answers[1], ActionRefused) and answers[1].reason == "replayed"
        assert len(api.requests) == 3 and _stored(path)["written"] == stored["written"]

        # the model's safety system refuses: a permanent failure in its words, once, nothing stored
        api.fail_next("content_policy")
        refused = image("Something the safety system will not draw")
        await present(herald, refused)
        failed = await execution_of(herald, refused.action.action_id)
        assert failed.status.value == "failed" and failed.failure is not None, failed
        assert (failed.failure.kind.value, failed.failure.code) == ("permanent", "image_content_refused")
        assert "rejected by the safety system" in failed.failure.message and token not in failed.failure.message
        assert api.statuses()[3:] == [400]
        assert not path.with_name(f"{refused.action.action_id.lower()}.png").exists()


def _stored(path: Path) -> dict[str, object]:
    """The file as the asset store holds it, read back with Pillow."""
    with Image.open(path) as image:
        return {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size": image.size,
            "format": image.format,
            "info": dict(image.info),
            "corner": image.convert("RGB").getpixel((5, 5)),
            "label_box": {
                image.convert("RGB").getpixel((x, y))
                for x in range(image.width // 2, image.width, 4)
                for y in range(image.height * 3 // 4, image.height, 4)
            },
            "written": path.stat().st_mtime_ns,
        }

"""generate_image end to end: a signed approval becomes a branded PNG in the tenant's asset store, read back
with Pillow (size, brand colour, the "generated" label), reported with its SHA-256; the same approval
presented again is refused as a replay and the file is not written twice."""

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
from support import email_action, envelope, publish, read_topic

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


def _stored(path: Path) -> dict[str, object]:
    """The file as the asset store holds it, read back with Pillow."""
    with Image.open(path) as image:
        return {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size": image.size,
            "format": image.format,
            "info": dict(image.info),
            "corner": image.convert("RGB").getpixel((5, 5)),
            "written": path.stat().st_mtime_ns,
        }

"""generate_image with a hosted model, against a loopback server that answers as OpenAI's Images API does: the
stored file is the model's picture fitted to the template, labelled and marked as generated; the key is read
from the tenant's file and sent as a bearer token; a 429's wait is honoured and a 500 retried by the runner; a
safety refusal, a refused key and an answer without a usable image fail for good, with nothing stored; once the
file exists the action is done and the model is not asked again."""

from __future__ import annotations

import hashlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from herald_core.contracts import ActionProposed, FailureKind
from herald_core.tenants import TenantConfig
from herald_executor.adapters.images import AssetStore, HostedImages, ImageTool, image_prompt
from herald_executor.execution import Discipline, ToolRunner
from herald_executor.logic import Reconciled, ToolError
from loopback_images import ImagesApi, images_api
from support import acme_tenant, tool_action

BACKGROUND = (0x12, 0x34, 0x56)  # the brand kit's, under the corner label


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@dataclass(frozen=True)
class Key:
    """The tenant's Images API key: the mounted file, and what it holds."""

    path: Path
    token: str

    def rotate(self, token: str) -> Key:
        self.path.write_text(token + "\n")  # as a mounted secret often ends: with a newline
        return Key(self.path, token)


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return Key(tmp_path / "images-key", "").rotate(f"sk-proj-{secrets.token_hex(12)}")


@pytest.fixture
async def api(key: Key) -> AsyncIterator[ImagesApi]:
    async with images_api(key.token) as server:
        yield server


def tenant_for(base_url: str, token_file: Path, model: str = "gpt-image-1", **images: Any) -> TenantConfig:
    return acme_tenant(
        f"hi{secrets.token_hex(4)}",
        timezone="UTC",
        brand={"palette": ["#123456", "#FAFAFA", "#FF8800"], "wordmark": "Acme", "voice": "calm and plain"},
        images={"kind": "hosted", "base_url": base_url, "model": model, "token_file": str(token_file), **images},
    )


def image_action(tenant: TenantConfig, template: str = "banner") -> ActionProposed:
    spec = {"template": template, "headline": "Carrier exceptions, handled", "subhead": "62% faster"}
    return tool_action(tenant.tenant_id, "generate_image", spec, contact_id=f"c{secrets.token_hex(3)}")


def runner(tool: ImageTool) -> ToolRunner:
    """The executor's runner as it is configured by default: retries with backoff, a 429's wait honoured."""
    rules = Discipline(timeout_seconds=30, concurrency=2, attempts=4, max_backoff_seconds=5)
    return ToolRunner({tool.tool: tool}, {tool.tool: rules})


def stored(path: Path) -> dict[str, Any]:
    """The file as the asset store holds it, read back with Pillow."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        width, height = image.size
        return {
            "format": image.format,
            "size": image.size,
            "info": dict(image.info),
            "centre": rgb.getpixel((width // 2, height // 2)),
            "corner": rgb.getpixel((5, 5)),
            "label": {rgb.getpixel((x, y)) for x in range(width // 2, width) for y in range(height * 3 // 4, height)},
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }


async def test_the_models_picture_is_stored_fitted_labelled_and_marked_generated(
    api: ImagesApi, client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(api.url, key.path)
    action = image_action(tenant)

    output = await tool.run(action, tenant)

    path = Path(output.path)
    assert path == tmp_path / "assets" / tenant.tenant_id / "images" / f"{action.action_id.lower()}.png"
    image = stored(path)
    assert (image["format"], image["size"]) == ("PNG", (1200, 628))
    assert (output.width, output.height, output.sha256, output.generated) == (1200, 628, image["sha256"], True)
    assert image["info"]["Generated"] == "true"
    assert image["info"]["Generator"] == "Herald generate_image (hosted gpt-image-1)"
    assert image["info"]["HeraldAction"] == action.action_id
    assert image["centre"] == image["corner"] == api.colour  # the model's picture, edge to edge
    assert BACKGROUND in image["label"] and api.colour in image["label"]  # the corner label on its brand box

    (request,) = api.requests
    assert request["body"] == {
        "model": "gpt-image-1",
        "prompt": image_prompt(action.input, tenant.brand, tenant.name),  # type: ignore[arg-type]
        "n": 1,
        "size": "1536x1024",  # of the sizes gpt-image-1 takes, the closest to the banner's shape
    }
    assert request["auth"] == f"Bearer {key.token}"


async def test_the_key_is_read_from_the_file_at_each_call(client: httpx.AsyncClient, key: Key, tmp_path: Path) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    async with images_api("sk-rotated-key-0002") as api:
        tenant = tenant_for(api.url, key.path)
        with pytest.raises(ToolError) as refused:
            await tool.run(image_action(tenant), tenant)
        assert (refused.value.kind, refused.value.code) == (FailureKind.PERMANENT, "image_unauthorized")
        assert "Incorrect API key provided" in str(refused.value)

        key.rotate("sk-rotated-key-0002")  # the secret rotated: no restart, no reload
        await tool.run(image_action(tenant), tenant)
    assert [r["auth"] for r in api.requests][1:] == ["Bearer sk-rotated-key-0002"]
    assert api.statuses() == [401, 200]


async def test_a_dall_e_model_is_asked_for_base64_at_its_size_and_any_answered_size_is_fitted(
    client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    async with images_api(key.token, answer_size=(640, 480)) as api:
        tenant = tenant_for(f"{api.url}/v1/", key.path, model="dall-e-3")  # a root pasted with /v1 works too
        output = await tool.run(image_action(tenant, "story"), tenant)
    assert stored(Path(output.path))["size"] == (1080, 1920)
    assert stored(Path(output.path))["info"]["Generator"] == "Herald generate_image (hosted dall-e-3)"
    (request,) = api.requests
    assert (request["body"]["size"], request["body"]["response_format"]) == ("1024x1792", "b64_json")


async def test_a_rate_limit_is_waited_out_as_asked_then_the_image_is_made_once(
    api: ImagesApi, client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(api.url, key.path)
    api.fail_next(429)
    outcome = await runner(tool).run(image_action(tenant), tenant)
    assert outcome.status == "done", outcome
    # the server answers 429 to anything before its Retry-After has passed: one retry, then the image, means
    # the runner waited as asked
    assert api.statuses() == [429, 200]

    api.fail_next(429)
    with pytest.raises(ToolError) as limited:  # what the adapter tells the runner: retry, after the server's wait
        await tool.run(image_action(tenant), tenant)
    assert (limited.value.kind, limited.value.code, limited.value.retry_after) == (
        FailureKind.RETRYABLE,
        "image_rate_limited",
        1.0,
    )
    assert not limited.value.may_have_applied


async def test_a_server_error_is_retried_and_the_image_made_once(
    api: ImagesApi, client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(api.url, key.path)
    api.fail_next(500)
    outcome = await runner(tool).run(image_action(tenant), tenant)
    assert outcome.status == "done", outcome
    assert outcome.output is not None and stored(Path(outcome.output["path"]))["size"] == (1200, 628)
    assert api.statuses() == [500, 200]


async def test_an_unreachable_api_is_not_started_and_nothing_is_stored(
    client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(closed, key.path)
    action = image_action(tenant)
    with pytest.raises(ToolError) as unreachable:
        await tool.run(action, tenant)
    assert (unreachable.value.kind, unreachable.value.code) == (FailureKind.RETRYABLE, "image_unavailable")
    assert not unreachable.value.may_have_applied
    rules = Discipline(timeout_seconds=30, concurrency=1, attempts=2, max_backoff_seconds=0.1)
    outcome = await ToolRunner({tool.tool: tool}, {tool.tool: rules}).run(action, tenant)
    assert outcome.status == "not_started"  # read again later, not failed and not in doubt
    assert not tool.assets.path(tenant.tenant_id, action.action_id).exists()


@pytest.mark.parametrize(
    ("answer", "code", "said"),
    [
        ("content_policy", "image_content_refused", "rejected by the safety system"),
        ("quota", "image_quota", "You exceeded your current quota"),
        ("garbage_base64", "image_undecodable", "not base64"),
        ("not_an_image", "image_undecodable", "could not be read"),
        ("url_only", "image_missing", "a link, not the image"),
        ("no_data", "image_missing", "no image"),
    ],
)
async def test_a_refusal_or_an_unusable_answer_fails_for_good_with_nothing_stored(
    api: ImagesApi, client: httpx.AsyncClient, key: Key, tmp_path: Path, answer: str, code: str, said: str
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(api.url, key.path)
    action = image_action(tenant)
    api.fail_next(answer)
    outcome = await runner(tool).run(action, tenant)
    assert outcome.status == "failed" and outcome.failure is not None, outcome
    assert (outcome.failure.kind, outcome.failure.code) == (FailureKind.PERMANENT, code)
    assert said in outcome.failure.message
    assert len(api.requests) == 1  # not retried
    assert not tool.assets.path(tenant.tenant_id, action.action_id).exists()


async def test_a_refused_key_fails_for_good_and_is_never_in_the_message(
    client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    async with images_api("sk-the-right-key-1234") as api:
        tenant = tenant_for(api.url, key.path)
        outcome = await runner(tool).run(image_action(tenant), tenant)
    assert outcome.failure is not None and (outcome.status, outcome.failure.code) == ("failed", "image_unauthorized")
    assert outcome.failure.message.startswith("Images API 401: Incorrect API key provided")
    assert key.token not in outcome.failure.message
    assert api.statuses() == [401]

    key.path.unlink()  # no key at all: refused before any call
    with pytest.raises(ToolError) as missing:
        await tool.run(image_action(tenant), tenant)
    assert (missing.value.kind, missing.value.code) == (FailureKind.PERMANENT, "image_unauthorized")
    assert api.statuses() == [401]


async def test_the_stored_file_is_the_proof_and_the_model_is_not_asked_again(
    api: ImagesApi, client: httpx.AsyncClient, key: Key, tmp_path: Path
) -> None:
    tool = ImageTool(AssetStore(tmp_path / "assets"), HostedImages(client))
    tenant = tenant_for(api.url, key.path)
    action = image_action(tenant)

    assert await tool.reconcile(action, tenant) == (Reconciled.SAFE_TO_RUN, None)  # nothing stored: run it
    made = await tool.run(action, tenant)
    verdict, found = await tool.reconcile(action, tenant)
    assert verdict is Reconciled.DONE and found == made

    outcome = await runner(tool).resume(action, tenant)  # found claimed after a crash: the file answers
    assert outcome.status == "done" and outcome.output == made.model_dump(mode="json")
    assert len(api.requests) == 1
    assert stored(Path(made.path))["info"]["HeraldAction"] == action.action_id

"""The `generate_image` tool's adapters, chosen per tenant (`images.kind`): a branded template rendered with
Pillow (the default; the same action always renders the same bytes), or a hosted image model behind an
OpenAI-compatible Images API (`POST <base_url>/v1/images/generations`), whose picture is fitted to the
template's size. Every image says it was generated (a visible corner label and PNG text chunks) and is stored
in the tenant's asset store under the action id: the file is the proof the action is done.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import math
import os
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from herald_core.bus import http_status_is_transient, retry_after_seconds
from herald_core.contracts import ActionProposed, FailureKind, GenerateImageInput
from herald_core.secret_files import SecretFiles
from herald_core.tenants import BrandKit, TenantConfig
from herald_core.tools import GenerateImageOutput
from herald_executor.logic import Reconciled, ToolError

SIZES = {"banner": (1200, 628), "square": (1080, 1080), "story": (1080, 1920)}
LABEL = "Generated image"

#: The sizes OpenAI's Images API accepts, by model. The GPT image models' sizes stand for every other model:
#: OpenAI-compatible servers commonly accept them.
ACCEPTED_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
}
COMMON_SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))
SHAPES = {"banner": "a wide landscape banner", "square": "a square social post", "story": "a tall 9:16 story"}
#: What a provider's error `code` says a safety system refused (OpenAI: DALL·E, then the GPT image models)
CONTENT_REFUSALS = {"content_policy_violation", "moderation_blocked"}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def label_as_generated(image: Image.Image, colour: str, backing: str | None = None) -> None:
    """Draw the visible "Generated image" label, in the same corner of every image Herald makes. A backing box
    keeps it legible on a picture whose colours Herald did not choose."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    margin = width // 12
    font = _font(max(width // 60, 12))
    at = (width - margin - draw.textlength(LABEL, font=font), height - height // 40 - 2 * font.size)
    if backing is not None:
        left, top, right, bottom = draw.textbbox(at, LABEL, font=font)
        pad = font.size // 2
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=backing)
    draw.text(at, LABEL, font=font, fill=colour)


def _png(image: Image.Image, generator: str, action_id: str) -> bytes:
    """The image as PNG with the text chunks that say, to any reader of the file, it was generated and by what."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Generated", "true")
    info.add_text("Generator", generator)
    info.add_text("HeraldAction", action_id)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def render(spec: GenerateImageInput, brand: BrandKit, tenant_name: str, action_id: str) -> tuple[bytes, int, int]:
    """The PNG of one action (deterministic: the same action gives the same bytes), with its size."""
    width, height = SIZES[spec.template]
    background, text, accent = brand.palette[:3]
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    margin = width // 12
    draw.rectangle((0, height - height // 40, width, height), fill=accent)
    headline = _font(width // 14)
    wrapped = _wrap(draw, spec.headline, headline, width - 2 * margin)
    draw.multiline_text((margin, height // 4), wrapped, font=headline, fill=text, spacing=12)
    if spec.subhead:
        below = draw.multiline_textbbox((margin, height // 4), wrapped, font=headline, spacing=12)[3]
        small = _font(width // 30)
        sub_text = _wrap(draw, spec.subhead, small, width - 2 * margin)
        draw.multiline_text((margin, below + height // 30), sub_text, font=small, fill=text)
    draw.text((margin, margin // 2), brand.wordmark or tenant_name, font=_font(width // 28), fill=accent)
    label_as_generated(image, text)
    return _png(image, "Herald generate_image (template)", action_id), width, height


# ---- a hosted image model


def image_prompt(spec: GenerateImageInput, brand: BrandKit, tenant_name: str) -> str:
    """What the model is asked to draw: the approved words, verbatim, in the tenant's colours. It stays under
    1,000 characters, the shortest prompt limit of such APIs (DALL·E 2), whatever the inputs' lengths."""
    background, text, accent = brand.palette[:3]
    wordmark = (brand.wordmark or tenant_name)[:60]  # a wordmark's longest; a tenant's name has no limit
    parts = [
        f"A marketing image, {SHAPES[spec.template]}.",
        f'Show the headline "{spec.headline}" in large, legible type.',
    ]
    if spec.subhead:
        parts.append(f'Below it, smaller: "{spec.subhead}".')
    parts += [
        f'Put the wordmark "{wordmark}" small in the top left.',
        f"Colours: background {background}, text {text}, accent {accent}.",
    ]
    if brand.voice:
        parts.append(f"Look and feel: {brand.voice}.")
    # the picture is cropped to the template's shape, and only the approved words may appear on it
    parts.append("No other words or logos, no real people. Keep the text away from the edges, which may be cropped.")
    return " ".join(parts)


def requested_size(template: str, model: str, configured: str | None = None) -> str:
    """The size to ask for: the tenant's, else of the sizes the model accepts the one closest to the template's
    shape (on a tie the larger: it is scaled down, not up, to the template's size)."""
    if configured:
        return configured
    width, height = SIZES[template]

    def distance(size: tuple[int, int]) -> tuple[float, int]:
        return abs(math.log(size[0] / size[1] * height / width)), -size[0] * size[1]

    best = min(ACCEPTED_SIZES.get(model, COMMON_SIZES), key=distance)
    return f"{best[0]}x{best[1]}"


def generation_request(model: str, prompt: str, size: str) -> dict[str, Any]:
    """The body of `POST /v1/images/generations`: one image, as base64 rather than a link that expires. OpenAI's
    GPT image models always answer base64 and refuse `response_format` ("Unknown parameter"), so it is left out."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1, "size": size}
    if not model.startswith("gpt-image"):
        body["response_format"] = "b64_json"
    return body


def fit_and_label(
    picture: bytes, template: str, brand: BrandKit, generator: str, action_id: str
) -> tuple[bytes, int, int]:
    """The model's picture as Herald stores it: scaled and centre-cropped to the template's size, transparency
    laid on the brand's background, labelled, re-encoded as PNG with Herald's text chunks (nothing else the
    model's file carried is kept)."""
    background, text = brand.palette[:2]
    try:
        with Image.open(io.BytesIO(picture)) as opened:
            opened.load()
            drawn = opened.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        raise ToolError(
            FailureKind.PERMANENT, "image_undecodable", f"the model's image could not be read: {exc}"
        ) from exc
    size = SIZES[template]
    image = Image.alpha_composite(Image.new("RGBA", drawn.size, background), drawn).convert("RGB")
    image = ImageOps.fit(image, size, method=Image.Resampling.LANCZOS)
    label_as_generated(image, text, backing=background)
    return _png(image, generator, action_id), *size


class HostedImages:
    """An image model behind an OpenAI-compatible Images API, with the tenant's key. The call creates nothing in
    Herald (an image exists for Herald once it is stored), so a failed or cut-off call is safe to make again:
    the worst a repeat does is pay for a second picture. The key never appears in a message or a log."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.secrets = SecretFiles()  # the token as its file holds it now: a rotation needs no restart

    async def generate(self, spec: GenerateImageInput, tenant: TenantConfig) -> bytes:
        """The picture's bytes, as the model encoded them."""
        images = tenant.images
        assert images.base_url and images.model and images.token_file  # the tenant file's validation says so
        try:
            token = self.secrets.read(images.token_file)
        except OSError as exc:
            raise ToolError(FailureKind.PERMANENT, "image_unauthorized", f"no Images API key: {exc}") from exc
        body = generation_request(
            images.model,
            image_prompt(spec, tenant.brand, tenant.name),
            requested_size(spec.template, images.model, images.size),
        )
        # the root is configured without `/v1`; one pasted from an SDK's setting (with it) is taken as meant
        url = f"{images.base_url.rstrip('/').removesuffix('/v1')}/v1/images/generations"
        try:
            response = await self.client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:  # unreachable, timed out, broken off: nothing in Herald changed
            raise ToolError(FailureKind.RETRYABLE, "image_unavailable", f"Images API: {exc!r}") from exc
        if response.status_code == 200:
            return _picture(response)
        raise typed_failure(response, token)


def _picture(response: httpx.Response) -> bytes:
    """The first image of a 200 answer (`{"created", "data": [{"b64_json", "revised_prompt"?}]}`), decoded."""
    try:
        answer: Any = response.json()
    except ValueError:
        answer = None
    data = answer.get("data") if isinstance(answer, dict) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    encoded = first.get("b64_json")
    if not isinstance(encoded, str) or not encoded:
        what = "a link, not the image (b64_json)" if first.get("url") else "no image"
        raise ToolError(FailureKind.PERMANENT, "image_missing", f"the Images API answered 200 with {what}")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError(FailureKind.PERMANENT, "image_undecodable", f"the image is not base64: {exc}") from exc


def typed_failure(response: httpx.Response, token: str) -> ToolError:
    """A non-200 answer, typed: waits and outages retried, everything else permanent with the provider's words."""
    status = response.status_code
    code, message = _provider_error(response)
    if token:  # a provider may quote the key it refused (replaced before any cut, which could leave a part)
        message = message.replace(token, "***")
    detail = f"Images API {status}: {message[:500]}"
    if status == 429 and code == "insufficient_quota":  # out of credit: no wait makes it succeed
        return ToolError(FailureKind.PERMANENT, "image_quota", detail)
    if status == 429:
        return ToolError(FailureKind.RETRYABLE, "image_rate_limited", detail, retry_after=_retry_after(response))
    if http_status_is_transient(status):
        return ToolError(FailureKind.RETRYABLE, "image_unavailable", detail)
    if status in (401, 403):
        return ToolError(FailureKind.PERMANENT, "image_unauthorized", detail)
    if code in CONTENT_REFUSALS:
        return ToolError(FailureKind.PERMANENT, "image_content_refused", detail)
    return ToolError(FailureKind.PERMANENT, "image_rejected", detail)


def _provider_error(response: httpx.Response) -> tuple[str | None, str]:
    """The error's code and message as OpenAI words them (`{"error": {"message", "type", "param", "code"}}`),
    else whatever the server said."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, response.text
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return (str(code) if code else None), str(error.get("message", ""))
    if isinstance(body, dict) and (error or body.get("detail")):
        return None, str(error or body.get("detail"))
    return None, str(body)


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a 429 asks for: `Retry-After` in seconds, or OpenAI's `retry-after-ms`; else the runner's backoff."""
    asked = retry_after_seconds(response.headers)
    milliseconds = response.headers.get("retry-after-ms", "")
    if asked is None and milliseconds.isdigit():
        asked = int(milliseconds) / 1000
    return asked


# ---- storage and the tool


class AssetStore:
    """Files under `<root>/<tenant>/images/<action id>.png`, written atomically (a reader never sees half)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant: str, action_id: str) -> Path:
        return self.root / tenant / "images" / f"{action_id.lower()}.png"

    def put(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".partial")
        staged.write_bytes(data)
        os.replace(staged, path)
        return hashlib.sha256(data).hexdigest()


class ImageTool:
    """generate_image: the tenant's adapter makes the picture, then it is stored under the action id. Only a
    stored file is a done action, so a repeat of a template writes the same bytes again, and a repeat of a
    hosted call (nothing stored yet) asks the model again, which publishes nothing."""

    tool = "generate_image"

    def __init__(self, assets: AssetStore, hosted: HostedImages) -> None:
        self.assets = assets
        self.hosted = hosted

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> GenerateImageOutput:
        spec = action.input
        assert isinstance(spec, GenerateImageInput)
        if tenant.images.kind == "hosted":
            picture = await self.hosted.generate(spec, tenant)
            generator = f"Herald generate_image (hosted {tenant.images.model})"
            data, width, height = await asyncio.to_thread(
                fit_and_label, picture, spec.template, tenant.brand, generator, action.action_id
            )
        else:
            data, width, height = await asyncio.to_thread(render, spec, tenant.brand, tenant.name, action.action_id)
        path = self.assets.path(action.tenant, action.action_id)
        digest = await asyncio.to_thread(self.assets.put, path, data)
        return GenerateImageOutput(
            asset_id=action.action_id.lower(), path=str(path), sha256=digest, width=width, height=height
        )

    async def reconcile(
        self, action: ActionProposed, tenant: TenantConfig
    ) -> tuple[Reconciled, GenerateImageOutput | None]:
        """The file is the proof, for either adapter: found, the action is done (a hosted model is not asked
        again); missing, nothing was published, so running it is safe."""
        path = self.assets.path(action.tenant, action.action_id)
        if not path.exists():  # files appear whole (a rename) or not at all
            return Reconciled.SAFE_TO_RUN, None
        data = await asyncio.to_thread(path.read_bytes)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        output = GenerateImageOutput(
            asset_id=action.action_id.lower(),
            path=str(path),
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
        )
        return Reconciled.DONE, output

"""The `generate_image` tool's default adapter: a branded template rendered with Pillow, stored in the
tenant's asset store. The same action always renders the same bytes; every image says it was generated
(a visible corner label and PNG text chunks)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from herald_core.contracts import ActionProposed, GenerateImageInput
from herald_core.tenants import BrandKit, TenantConfig
from herald_core.tools import GenerateImageOutput
from herald_executor.logic import Reconciled

SIZES = {"banner": (1200, 628), "square": (1080, 1080), "story": (1080, 1920)}
LABEL = "Generated image"


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
    label = _font(max(width // 60, 12))
    draw.text(
        (width - margin - draw.textlength(LABEL, font=label), height - height // 40 - 2 * label.size),
        LABEL,
        font=label,
        fill=text,
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("Generated", "true")
    info.add_text("Generator", "Herald generate_image (template)")
    info.add_text("HeraldAction", action_id)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue(), width, height


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
    """generate_image: render, then store under the action id (a repeat writes the same bytes to the same file)."""

    tool = "generate_image"

    def __init__(self, assets: AssetStore) -> None:
        self.assets = assets

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> GenerateImageOutput:
        spec = action.input
        assert isinstance(spec, GenerateImageInput)
        data, width, height = await asyncio.to_thread(render, spec, tenant.brand, tenant.name, action.action_id)
        path = self.assets.path(action.tenant, action.action_id)
        digest = await asyncio.to_thread(self.assets.put, path, data)
        return GenerateImageOutput(
            asset_id=action.action_id.lower(), path=str(path), sha256=digest, width=width, height=height
        )

    async def reconcile(
        self, action: ActionProposed, tenant: TenantConfig
    ) -> tuple[Reconciled, GenerateImageOutput | None]:
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

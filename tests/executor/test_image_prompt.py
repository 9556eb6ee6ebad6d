"""What the hosted image adapter asks a model for, and how it reads the answer, without a server: the prompt
(the approved words verbatim, the brand, within the shortest prompt limit), the size asked per template and
model, the request body, how an error answer is typed, and how any picture becomes a labelled PNG of the
template's size."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from herald_core.contracts import FailureKind, GenerateImageInput
from herald_core.tenants import BrandKit
from herald_executor.adapters.images import (
    SIZES,
    fit_and_label,
    generation_request,
    image_prompt,
    requested_size,
    typed_failure,
)

BRAND = BrandKit(palette=("#123456", "#FAFAFA", "#FF8800"), wordmark="Acme", voice="calm, plain, lots of white space")


def test_the_prompt_carries_the_approved_words_verbatim_and_the_brand() -> None:
    spec = GenerateImageInput(template="banner", headline="Carrier exceptions, handled", subhead="62% faster")
    prompt = image_prompt(spec, BRAND, "Acme Relay")
    assert 'headline "Carrier exceptions, handled"' in prompt
    assert '"62% faster"' in prompt
    assert 'wordmark "Acme"' in prompt and "Acme Relay" not in prompt
    assert "background #123456, text #FAFAFA, accent #FF8800" in prompt
    assert "Look and feel: calm, plain, lots of white space." in prompt
    assert "wide landscape banner" in prompt
    assert "No other words or logos" in prompt


def test_without_a_subhead_wordmark_or_voice_the_prompt_says_nothing_of_them() -> None:
    spec = GenerateImageInput(template="story", headline="Launch week")
    prompt = image_prompt(spec, BrandKit(), "Acme Relay")
    assert "Below it" not in prompt and "Look and feel" not in prompt
    assert 'wordmark "Acme Relay"' in prompt  # the tenant's name stands in for a wordmark, as on the template
    assert "tall 9:16 story" in prompt
    assert image_prompt(GenerateImageInput(template="square", headline="x"), BrandKit(), "A").count("square") == 1


def test_the_longest_inputs_stay_within_the_shortest_prompt_limit() -> None:
    spec = GenerateImageInput(template="story", headline="H" * 120, subhead="S" * 200)
    brand = BrandKit(wordmark="W" * 60, voice="V" * 200)
    assert len(image_prompt(spec, brand, "Acme Relay")) <= 1000
    assert len(image_prompt(spec, BrandKit(voice="V" * 200), "N" * 500)) <= 1000  # a name has no length limit


@pytest.mark.parametrize(
    ("model", "template", "size"),
    [
        ("gpt-image-1", "banner", "1536x1024"),
        ("gpt-image-1", "square", "1024x1024"),
        ("gpt-image-1", "story", "1024x1536"),
        ("dall-e-3", "banner", "1792x1024"),
        ("dall-e-3", "square", "1024x1024"),
        ("dall-e-3", "story", "1024x1792"),
        ("dall-e-2", "banner", "1024x1024"),  # squares only: the largest
        ("dall-e-2", "story", "1024x1024"),
        ("some-compatible-model", "banner", "1536x1024"),  # any other model: the sizes such servers commonly take
        ("some-compatible-model", "story", "1024x1536"),
    ],
)
def test_each_template_asks_for_the_accepted_size_closest_to_its_shape(model: str, template: str, size: str) -> None:
    assert requested_size(template, model) == size


def test_a_configured_size_is_asked_for_every_template() -> None:
    assert {requested_size(t, "gpt-image-1", "1024x1024") for t in SIZES} == {"1024x1024"}


def test_gpt_image_models_are_not_sent_response_format_and_the_others_are_asked_for_base64() -> None:
    assert generation_request("gpt-image-1", "p", "1024x1024") == {
        "model": "gpt-image-1",
        "prompt": "p",
        "n": 1,
        "size": "1024x1024",
    }
    assert generation_request("dall-e-3", "p", "1792x1024") == {
        "model": "dall-e-3",
        "prompt": "p",
        "n": 1,
        "size": "1792x1024",
        "response_format": "b64_json",
    }


def _answer(status: int, body: object, **headers: str) -> httpx.Response:
    """An answer as the adapter receives it: JSON, or plain text (a proxy's error page)."""
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def _openai_error(code: str | None, message: str) -> dict[str, object]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _limited(**headers: str) -> tuple[int, object, dict[str, str]]:
    return 429, _openai_error("rate_limit_exceeded", "Rate limit reached for images per minute"), headers


RETRYABLE, PERMANENT = FailureKind.RETRYABLE, FailureKind.PERMANENT


@pytest.mark.parametrize(
    ("answer", "kind", "code", "retry_after"),
    [
        (_limited(**{"Retry-After": "7"}), RETRYABLE, "image_rate_limited", 7.0),
        (_limited(**{"retry-after-ms": "2500"}), RETRYABLE, "image_rate_limited", 2.5),
        (_limited(), RETRYABLE, "image_rate_limited", None),  # the runner's own backoff
        ((429, _openai_error("insufficient_quota", "You exceeded your quota"), {}), PERMANENT, "image_quota", None),
        ((500, _openai_error(None, "The server had an error"), {}), RETRYABLE, "image_unavailable", None),
        ((503, "Service Unavailable", {}), RETRYABLE, "image_unavailable", None),
        ((401, _openai_error("invalid_api_key", "Incorrect API key"), {}), PERMANENT, "image_unauthorized", None),
        ((403, _openai_error(None, "Project does not have access"), {}), PERMANENT, "image_unauthorized", None),
        (
            (400, _openai_error("content_policy_violation", "safety system"), {}),
            PERMANENT,
            "image_content_refused",
            None,
        ),
        ((400, _openai_error("moderation_blocked", "the safety system"), {}), PERMANENT, "image_content_refused", None),
        ((400, _openai_error("invalid_value", "Invalid value: '1200x628'"), {}), PERMANENT, "image_rejected", None),
        ((404, _openai_error("model_not_found", "no model `x`"), {}), PERMANENT, "image_rejected", None),
        ((422, {"detail": "prompt: field required"}, {}), PERMANENT, "image_rejected", None),
    ],
)
def test_an_error_answer_is_typed_with_the_providers_words(
    answer: tuple[int, object, dict[str, str]], kind: FailureKind, code: str, retry_after: float | None
) -> None:
    status, body, headers = answer
    error = typed_failure(_answer(status, body, **headers), "sk-key")
    assert (error.kind, error.code, error.retry_after) == (kind, code, retry_after)
    assert not error.may_have_applied  # nothing exists in Herald until the image is stored
    if isinstance(body, dict):
        said = body["error"]["message"] if "error" in body else body["detail"]
    else:
        said = body
    assert said in str(error)
    assert str(status) in str(error)


def test_a_key_the_provider_quotes_back_never_reaches_the_message() -> None:
    token = "sk-proj-4f9a1c2e8b7d6a5f"
    answer = _answer(401, _openai_error("invalid_api_key", f"Incorrect API key provided: {token}."))
    error = typed_failure(answer, token)
    assert token not in str(error) and token not in error.failure.message
    assert "Incorrect API key provided: ***." in str(error)
    long = typed_failure(_answer(400, _openai_error(None, "x" * 495 + token)), token)  # where the cut falls
    assert token[:5] not in str(long) and str(long).endswith("x***")


def _picture(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB", format: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format=format)
    return out.getvalue()


@pytest.mark.parametrize("template", ["banner", "square", "story"])
def test_any_picture_is_fitted_to_the_template_labelled_and_marked_as_generated(template: str) -> None:
    picture = _picture((1536, 1024), (30, 140, 80), format="JPEG")  # another shape and format than stored
    data, width, height = fit_and_label(picture, template, BRAND, "Herald generate_image (hosted m)", "01ACTION")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, (width, height)) == ("PNG", SIZES[template], SIZES[template])
        assert image.info["Generated"] == "true"
        assert image.info["Generator"] == "Herald generate_image (hosted m)"
        assert image.info["HeraldAction"] == "01ACTION"
        pixels = image.convert("RGB")
    assert _near(pixels.getpixel((width // 2, height // 2)), (30, 140, 80))
    assert _near(pixels.getpixel((5, 5)), (30, 140, 80))  # the model's picture to the edge: only fitted
    labelled = _changed(pixels, (30, 140, 80))
    assert labelled, "no label drawn"
    assert all(x > width // 2 and y > height * 3 // 4 for x, y in labelled)  # in the bottom right corner
    assert (0x12, 0x34, 0x56) in {pixels.getpixel(at) for at in labelled}  # on a box in the brand's background


def test_transparency_is_laid_on_the_brand_background() -> None:
    data, width, height = fit_and_label(
        _picture((1024, 1024), (0, 0, 0, 0), mode="RGBA"), "square", BRAND, "g", "01ACTION"
    )
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB"
        assert image.getpixel((width // 2, height // 2)) == (0x12, 0x34, 0x56)


def _near(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 3 for a, b in zip(pixel, colour, strict=True))  # JPEG rounds


def _changed(image: Image.Image, colour: tuple[int, int, int]) -> list[tuple[int, int]]:
    """Where the image is not the picture's colour (sampled every 4 pixels)."""
    width, height = image.size
    return [
        (x, y) for y in range(0, height, 4) for x in range(0, width, 4) if not _near(image.getpixel((x, y)), colour)
    ]

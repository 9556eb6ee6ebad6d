"""A loopback server that answers like OpenAI's Images API, for the executor's hosted image adapter.

It follows OpenAI's documented shapes: `POST /v1/images/generations` with a bearer key and
`{"model", "prompt", "n", "size", "response_format"?}`, answered `{"created", "data": [{"b64_json",
"revised_prompt"?}]}`; errors as `{"error": {"message", "type", "param", "code"}}` — 401 `invalid_api_key`
(the key masked), 404 `model_not_found`, 400 `invalid_value` for a size the model does not take, 400
`unknown_parameter` for `response_format` sent to a GPT image model, 400 `content_policy_violation` (DALL·E) or
`moderation_blocked` (GPT image) from the safety system, 429 `rate_limit_exceeded` with `Retry-After`, 500
`server_error`. Like a real rate limiter, it refuses every request until a 429's `Retry-After` has passed, so a
client that does not wait meets another 429. A test queues failures (`fail_next`) and reads `requests` back.
"""

from __future__ import annotations

import base64
import contextlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from support import loopback

#: the sizes each model takes (None: any WxH, as many OpenAI-compatible servers do)
MODEL_SIZES: dict[str, tuple[str, ...] | None] = {
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "loopback-any-size": None,
}
PROMPT_LIMITS = {"gpt-image-1": 32000, "dall-e-3": 4000, "dall-e-2": 1000, "loopback-any-size": 4000}


@dataclass
class ImagesApi:
    token: str
    url: str = ""
    colour: tuple[int, int, int] = (30, 140, 80)  # what the model paints, edge to edge
    answer_size: tuple[int, int] | None = None  # a server that ignores the size asked for
    retry_after_seconds: int = 1
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, answered or not
    failures: list[int | str] = field(default_factory=list)  # answers to give next, in order
    not_before: float = 0.0  # monotonic time the last 429 asked the client to wait for

    def fail_next(self, *answers: int | str) -> None:
        """Queue answers: a status (429, 500, 503) or `content_policy`, `quota`, `garbage_base64`, `not_an_image`,
        `url_only`, `no_data`."""
        self.failures.extend(answers)

    def statuses(self) -> list[int]:
        return [r["status"] for r in self.requests]


def _error(status: int, message: str, type_: str, code: str | None, param: str | None = None, **headers: str) -> Any:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _app(api: ImagesApi) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Any:
        body = await request.json()
        seen: dict[str, Any] = {"body": body, "auth": request.headers.get("authorization")}
        api.requests.append(seen)
        answer = _answer(api, body, request.headers.get("authorization"))
        seen["status"] = answer.status_code
        return answer

    return app


def _answer(api: ImagesApi, body: dict[str, Any], auth: str | None) -> Any:
    if time.monotonic() < api.not_before:  # the last 429's wait has not passed
        return _rate_limited(api)
    if auth != f"Bearer {api.token}":
        key = (auth or "").removeprefix("Bearer ")
        masked = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
        return _error(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    model = body.get("model")
    if model not in MODEL_SIZES:
        return _error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )
    gpt_image = str(model).startswith("gpt-image")
    if gpt_image and "response_format" in body:
        return _error(400, "Unknown parameter: 'response_format'.", "invalid_request_error", "unknown_parameter")
    sizes = MODEL_SIZES[model]
    size = body.get("size", "1024x1024")
    if sizes is not None and size not in sizes:
        supported = ", ".join(f"'{s}'" for s in sizes)
        return _error(
            400,
            f"Invalid value: '{size}'. Supported values are: {supported}.",
            "invalid_request_error",
            "invalid_value",
            "size",
        )
    if len(body.get("prompt", "")) > PROMPT_LIMITS[model]:
        return _error(400, "prompt is too long", "invalid_request_error", "invalid_value", "prompt")

    encoded = base64.b64encode(_png(api.answer_size or _size(size), api.colour)).decode()
    image: dict[str, Any] = {"b64_json": encoded}
    if api.failures:
        failure = api.failures.pop(0)
        match failure:
            case 429:
                return _rate_limited(api, start=True)
            case "quota":
                return _error(
                    429,
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                )
            case int() as status:
                return _error(
                    status,
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                )
            case "content_policy" if gpt_image:
                return _error(
                    400,
                    "Your request was rejected by the safety system. If you believe this is an error, contact us.",
                    "image_generation_user_error",
                    "moderation_blocked",
                )
            case "content_policy":
                return _error(
                    400,
                    "Your request was rejected as a result of our safety system. Your prompt may contain text that "
                    "is not allowed by our safety system.",
                    "invalid_request_error",
                    "content_policy_violation",
                )
            case "garbage_base64":
                image = {"b64_json": "this is not base64!!"}
            case "not_an_image":
                image = {"b64_json": base64.b64encode(b"<html>not an image</html>").decode()}
            case "url_only":
                image = {"url": "https://images.example/abc.png"}
            case "no_data":
                return JSONResponse({"created": int(time.time()), "data": []})
    if model == "dall-e-3" and "b64_json" in image:
        image["revised_prompt"] = f"An illustration: {body.get('prompt', '')}"
    return JSONResponse({"created": int(time.time()), "data": [image]})


def _rate_limited(api: ImagesApi, *, start: bool = False) -> Any:
    if start:
        api.not_before = time.monotonic() + api.retry_after_seconds
    return _error(
        429,
        "Rate limit reached for images per minute. Please try again later.",
        "requests",
        "rate_limit_exceeded",
        **{"Retry-After": str(api.retry_after_seconds), "x-ratelimit-limit-requests": "5"},
    )


def _size(size: str) -> tuple[int, int]:
    if size == "auto":
        return 1024, 1024
    width, height = size.split("x")
    return int(width), int(height)


@contextlib.asynccontextmanager
async def images_api(token: str, **options: Any) -> AsyncIterator[ImagesApi]:
    api = ImagesApi(token=token, **options)
    async with loopback(_app(api)) as url:
        api.url = url
        yield api

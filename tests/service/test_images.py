"""Images from the edges reach a vision-capable model, or are refused saying why."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from relaybaton.actors import Agent, open_runtime
from relaybaton.adapters import Capabilities, ModelRequest, UserMessage
from relaybaton.adapters._images import image_from_file, image_from_url
from relaybaton.errors import ConfigError
from relaybaton.service import create_service
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
DATA_URL = f"data:image/png;base64,{PNG}"


def _describe(request: ModelRequest) -> str:
    [last] = [m for m in request.messages if isinstance(m, UserMessage)][-1:]
    kinds = ",".join(i.url or i.media_type for i in last.images)
    return f"saw {len(last.images)} image(s): {kinds}"


@asynccontextmanager
async def _serve(*, vision: bool) -> AsyncIterator[str]:
    model = ScriptedModel(_describe, capabilities=Capabilities(vision=vision))
    agent = Agent(name="assistant", instructions="Look.", model="general")
    async with open_runtime(agent, models=model) as runtime:
        service = create_service(runtime, flow_name="flow")
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}"
        finally:
            await service.drain(5.0)
            await runner.cleanup()
            service.close()


async def _post(*, vision: bool, path: str, body: dict[str, object]) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with (
        _serve(vision=vision) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}{path}", json=body) as response,
    ):
        return response.status, await response.json()


def _chat(*parts: dict[str, object]) -> dict[str, object]:
    content = [{"type": "text", "text": "What is in this picture?"}, *parts]
    return {"model": "flow", "messages": [{"role": "user", "content": content}]}


async def test_image_url_parts_data_and_http_reach_a_vision_model() -> None:
    parts = (
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image_url", "image_url": {"url": "https://img.example/cat.jpg", "detail": "low"}},
    )
    status, body = await _post(vision=True, path="/v1/chat/completions", body=_chat(*parts))
    assert status == 200, body
    answer = body["choices"][0]["message"]["content"]
    assert answer == "saw 2 image(s): image/png,https://img.example/cat.jpg"


async def test_the_native_api_takes_an_images_field() -> None:
    message = {"text": "What is this?", "images": [{"url": DATA_URL}]}
    status, body = await _post(vision=True, path="/v1/conversations/c1/messages", body=message)
    assert status == 200, body
    assert body["replies"][0]["text"] == "saw 1 image(s): image/png"


async def test_a_slot_without_vision_refuses_an_image_with_a_clear_error() -> None:
    part = {"type": "image_url", "image_url": {"url": DATA_URL}}
    status, body = await _post(vision=False, path="/v1/chat/completions", body=_chat(part))
    assert status == 502
    assert "cannot read images" in body["error"]["message"]
    assert "vision-capable model" in body["error"]["message"]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("data:image/bmp;base64,AAAA", "is not an image providers take"),
        ("data:image/png;base64,@@@", "does not decode"),
        ("ftp://img.example/x.png", "expected a data:image/"),
    ],
)
async def test_a_bad_image_is_a_400_naming_the_field(url: str, said: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    status, body = await _post(vision=True, path="/v1/chat/completions", body=_chat(part))
    assert status == 400
    assert said in body["error"]["message"]
    assert body["error"]["param"] == "messages[0].content"


def test_images_from_files_and_urls(tmp_path: Path) -> None:
    picture = tmp_path / "cat.PNG"
    picture.write_bytes(base64.b64decode(PNG))
    assert image_from_file(picture).data_base64 == PNG
    assert image_from_file(picture).media_type == "image/png"
    assert image_from_url("https://img.example/a.png").url == "https://img.example/a.png"
    with pytest.raises(ConfigError, match=r"unknown image type '\.txt'"):
        image_from_file(tmp_path / "notes.txt")
    with pytest.raises(ConfigError, match="cannot read it"):
        image_from_file(tmp_path / "missing.png")

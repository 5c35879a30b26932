"""The console's guards over real HTTP: login, cookie flags, CSRF, CSP, escaping, and a
session that may read the API but not change anything through it."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from relaybaton.service import TokenTable
from relaybaton.service._server import ConsoleOptions
from tests.service._support import serving

pytestmark = pytest.mark.anyio

SECRET = "s3cret-token-for-the-console-tests"


def tokens() -> TokenTable:
    return TokenTable.from_environment({"RELAYBATON_API_TOKENS": SECRET})


def client() -> aiohttp.ClientSession:
    # Cookies for 127.0.0.1 need the "unsafe" jar (aiohttp ignores them for IPs otherwise).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(
    session: aiohttp.ClientSession, url: str, secret: str = SECRET
) -> aiohttp.ClientResponse:
    async with session.get(f"{url}/login") as form:
        nonce = re.search(r'name="nonce" value="([^"]+)"', await form.text())
    assert nonce is not None
    return await session.post(
        f"{url}/login", data={"nonce": nonce.group(1), "token": secret}, allow_redirects=False
    )


async def csrf_of(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/") as page:
        found = re.search(r'data-csrf="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)


async def test_pages_ask_for_a_login_and_a_token_sets_a_strict_httponly_cookie() -> None:
    async with serving(tokens=tokens(), console=ConsoleOptions()) as served, client() as session:
        async with session.get(f"{served.url}/", allow_redirects=False) as page:
            assert (page.status, page.headers["Location"]) == (303, "/login")
        wrong = await login(session, served.url, "not-the-token-at-all-really")
        assert wrong.status == 401
        assert "rb_session" not in wrong.cookies
        right = await login(session, served.url)
        assert right.status == 303
        cookie = right.headers.getall("Set-Cookie")
        flags = next(c for c in cookie if c.startswith("rb_session="))
        assert "HttpOnly" in flags
        assert "SameSite=Strict" in flags
        async with session.get(f"{served.url}/") as page:
            assert page.status == 200
            assert "Conversations" in await page.text()


async def test_a_login_form_without_its_nonce_cookie_is_refused() -> None:
    async with (
        serving(tokens=tokens(), console=ConsoleOptions()) as served,
        client() as session,
        session.post(
            f"{served.url}/login", data={"nonce": "guessed", "token": SECRET}, allow_redirects=False
        ) as refused,
    ):
        assert refused.status == 403
        assert "rb_session" not in refused.cookies


async def test_every_form_needs_the_sessions_csrf_token() -> None:
    async with serving(console=ConsoleOptions()) as served, client() as session:
        await served.runtime.send("c", "hello")
        csrf = await csrf_of(session, served.url)
        url = f"{served.url}/conversations/c/pause"
        async with session.post(url, data={"epoch": "0"}, allow_redirects=False) as missing:
            assert missing.status == 403
            assert "CSRF token is missing or stale" in await missing.text()
        async with session.post(
            url, data={"epoch": "0", "csrf": "x" * 43}, allow_redirects=False
        ) as wrong:
            assert wrong.status == 403
        conversation = served.runtime.conversation("c")
        assert conversation is not None
        assert conversation.control is None
        async with session.post(
            url, data={"epoch": "0", "csrf": csrf}, allow_redirects=False
        ) as ok:
            assert ok.status == 303
        assert conversation.control is not None
        assert conversation.control.hold is not None
        assert conversation.control.hold.by == "person:loopback"


async def test_a_session_reads_the_api_but_cannot_write_through_it() -> None:
    async with serving(tokens=tokens(), console=ConsoleOptions()) as served, client() as session:
        await login(session, served.url)
        async with session.get(f"{served.url}/v1/conversations") as read:
            assert read.status == 200
        async with session.post(
            f"{served.url}/v1/conversations/c/messages", json={"text": "hi"}
        ) as write:
            assert write.status == 403
            assert (await write.json())["error"]["code"] == "session_read_only"
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.get(f"{served.url}/v1/conversations") as refused,
        ):
            assert refused.status == 401


async def test_every_page_forbids_inline_script_and_escapes_what_it_shows() -> None:
    async with serving(console=ConsoleOptions()) as served, client() as session:
        await served.runtime.send("c", "<script>alert('x')</script> & <b>bold</b>")
        for path in (
            "/",
            "/conversations/c",
            "/approvals",
            "/supervisor",
            "/memory",
            "/evaluations",
            "/login",
        ):
            async with session.get(f"{served.url}{path}") as page:
                assert page.status == 200, path
                policy = page.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy
                assert "unsafe-inline" not in policy
                body = await page.text()
                # Every script comes from this server by src; none is inline.
                assert re.findall(r"<script(?![^>]*\ssrc=)", body) == [], path
                assert "<script>alert" not in body, path
        async with session.get(f"{served.url}/conversations/c") as page:
            body = await page.text()
        assert (
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            in body
        )


async def test_the_evaluations_page_says_plainly_when_there_are_no_reports(tmp_path: Path) -> None:
    async with serving(console=ConsoleOptions(reports=tmp_path)) as served, client() as session:
        async with session.get(f"{served.url}/evaluations") as page:
            assert "There are no evaluation reports in" in await page.text()
        (tmp_path / "run.json").write_text('{"dataset": "support", "pass_rate": 0.9, "cases": []}')
        async with session.get(f"{served.url}/evaluations") as page:
            body = await page.text()
        assert "run.json" in body
        assert "pass_rate" in body


async def test_the_memory_page_browses_and_searches_one_users_graph(tmp_path: Path) -> None:
    from relaybaton.memory import Entity, KnowledgeGraph, Relation, open_graph_store

    async with open_graph_store(tmp_path / "memory.db") as store:
        ana = KnowledgeGraph(store, namespace="ana")
        await ana.create_entities(
            [
                Entity(name="customer", entity_type="person", observations=("prefers <email>",)),
                Entity(name="order AB-1", entity_type="order", observations=("damaged",)),
            ]
        )
        await ana.create_relations(
            [Relation(from_="customer", to="order AB-1", relation_type="placed")]
        )
        await KnowledgeGraph(store, namespace="bo").create_entities(
            [Entity(name="bo's secret", entity_type="note")]
        )
        async with serving(console=ConsoleOptions(memory=store)) as served, client() as session:
            async with session.get(f"{served.url}/memory?user=ana") as page:
                body = await page.text()
            assert "order AB-1" in body
            assert "prefers &lt;email&gt;" in body
            assert "placed" in body
            assert "bo&#x27;s secret" not in body
            async with session.get(f"{served.url}/memory?user=ana&q=damaged") as page:
                body = await page.text()
            assert "order AB-1" in body
            assert "<h3>customer <small>" not in body  # the search found the order only

"""``/docs`` and ``/redoc`` render in real Chromium with every non-loopback request blocked.

Their Swagger UI and ReDoc assets come from the fastapi-offline package, served by the
service itself (``chainkit/server/_docs.py``), not from a CDN.
"""

from __future__ import annotations

from typing import Any

import httpx

from chainkit.server import ServiceThread
from tests.debug.test_browser import browser  # noqa: F401 - the Chromium fixture


def _offline_page(browser: Any, service: ServiceThread) -> tuple[Any, list[str]]:  # noqa: F811
    page = browser.new_page()
    blocked: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(service.url):
            request_route.continue_()
        else:  # the network is not there: a CDN asset would never load
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    return page, blocked


def test_swagger_ui_renders_offline(browser: Any, service: ServiceThread) -> None:  # noqa: F811
    page, blocked = _offline_page(browser, service)
    try:
        page.goto(f"{service.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "chainkit" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(
            "text=/generate", timeout=30_000
        )  # the operations, from /openapi.json
    finally:
        page.close()
    assert blocked == []


def test_redoc_renders_offline(browser: Any, service: ServiceThread) -> None:  # noqa: F811
    page, blocked = _offline_page(browser, service)
    try:
        page.goto(f"{service.url}/redoc")
        page.wait_for_selector("h1:has-text('chainkit')", timeout=30_000)
        page.wait_for_selector("text=/generate", timeout=30_000)
    finally:
        page.close()
    # only ReDoc's "API docs by Redocly" badge points at its CDN; the page needs none of it
    assert all(url.startswith("https://cdn.redoc.ly/redoc/logo") for url in blocked), blocked


def test_the_docs_pages_name_no_cdn(service: ServiceThread) -> None:
    with httpx.Client(base_url=service.url) as client:
        for path in ("/docs", "/redoc"):
            page = client.get(path)
            assert page.status_code == 200
            assert "cdn.jsdelivr.net" not in page.text
            assert "fonts.googleapis.com" not in page.text
        asset = client.get("/docs-assets/swagger-ui-bundle.js")
        assert asset.status_code == 200
        assert len(asset.content) > 100_000

"""The API docs work offline: /docs and /redoc load their scripts and styles from the service."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_loads_everything_from_the_service(client, page) -> None:
    html = client.get(page).text
    assets = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', html)
    assert assets and all(url.startswith("/") for url in assets), assets
    for url in assets:
        assert client.get(url).status_code == 200, url
    assert "openapi.json" in html


def test_docs_and_their_assets_are_counted_under_their_routes(client) -> None:
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/static-offline-docs/swagger-ui.css")
    client.get("/no/such/page")
    metrics = client.get("/metrics").text
    for route in ("/docs", "/openapi.json", "/static-offline-docs/{path}"):
        assert f'route="{route}",status="200"' in metrics, route
    assert 'route="unmatched",status="404"' in metrics

"""Auth: with a token, every endpoint but /health needs it; the bind-address guard."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chainkit.errors import ConfigError, UnprotectedBindError
from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread, check_bind, is_loopback
from tests.server.conftest import TOKEN, LogLines, iter_sse, running

PROTECTED = [
    ("GET", "/chains", None),
    ("GET", "/metrics", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("POST", "/generate", {"prompt": "hi"}),
    ("POST", "/chains/haiku/invoke", {"input": {"topic": "x"}}),
    ("POST", "/chains/haiku/batch", {"inputs": [{"topic": "x"}]}),
    ("POST", "/chains/haiku/stream", {"input": {"topic": "x"}}),
    ("POST", "/chains/haiku/stream_events", {"input": {"topic": "x"}}),
    ("POST", "/chains/haiku/stream_log", {"input": {"topic": "x"}}),
    ("GET", "/chains/haiku/input_schema", None),
    ("GET", "/chains/haiku/output_schema", None),
    ("GET", "/chains/haiku/config_schema", None),
    ("POST", "/chains/nope/invoke", {"input": {}}),  # no hint that a chain exists or not
    ("GET", "/nope", None),
]


@pytest.fixture(scope="module")
def guarded(model_server: LocalModelServer) -> Iterator[ServiceThread]:
    with running(model_server, ServerSettings(api_token=TOKEN)) as svc:
        yield svc


BAD_AUTHORIZATIONS = [
    None,
    "Bearer wrong-token-0123456789",
    f"Basic {TOKEN}",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    "Bearer",
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_requests_without_the_token_are_401(
    guarded: ServiceThread, method: str, path: str, body: object
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        for authorization in BAD_AUTHORIZATIONS:
            headers = {"Authorization": authorization} if authorization else {}
            response = c.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, authorization
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            assert error["code"] == "unauthorized"
            assert "Bearer" in error["message"]
            assert TOKEN not in response.text


def test_health_is_open(guarded: ServiceThread) -> None:
    response = httpx.get(guarded.url + "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_the_token_opens_every_endpoint(guarded: ServiceThread, logs: LogLines) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, headers=headers, timeout=30) as c:
        assert c.get("/chains").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert c.get("/docs").status_code == 200
        assert c.post("/generate", json={"prompt": "hi"}).status_code == 200
        assert c.post("/chains/haiku/invoke", json={"input": {"topic": "x"}}).status_code == 200
        response = c.post("/chains/haiku/batch", json={"inputs": [{"topic": "x"}]})
        assert response.status_code == 200
        body = {"input": {"topic": "x"}}
        with c.stream("POST", "/chains/haiku/stream", json=body) as r:
            assert [e.event for e in iter_sse(r)][-1] == "end"
        # the scheme is case-insensitive
        lower = {"Authorization": f"bearer {TOKEN}"}
        assert c.get("/chains", headers=lower).status_code == 200
        openapi = c.get("/openapi.json").json()
        assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert "security" not in openapi["paths"]["/health"]["get"]
        assert openapi["paths"]["/chains"]["get"]["security"] == [{"bearer": []}]
    assert TOKEN not in logs.text()


def test_without_a_token_everything_is_open(client: httpx.Client) -> None:
    assert client.get("/chains").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINKIT_API_TOKEN", TOKEN)
    settings = ServerSettings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    monkeypatch.delenv("CHAINKIT_API_TOKEN")
    assert ServerSettings().api_token is None


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        ServerSettings(api_token="short")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # noqa: S104 - the point of the test
        ("::", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_bind() -> None:
    from pydantic import SecretStr

    check_bind("127.0.0.1", token=None, insecure=False)
    check_bind("0.0.0.0", token=SecretStr(TOKEN), insecure=False)  # noqa: S104
    check_bind("0.0.0.0", token=None, insecure=True)  # noqa: S104
    with pytest.raises(UnprotectedBindError, match="refusing to serve the service") as info:
        check_bind("0.0.0.0", token=None, insecure=False)  # noqa: S104
    assert (info.value.host, info.value.token_env) == ("0.0.0.0", "CHAINKIT_API_TOKEN")  # noqa: S104

"""`chainkit serve`, and the app as a uvicorn factory."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from chainkit.cli import main
from tests.server.conftest import TOKEN, serve_process

pytestmark = pytest.mark.usefixtures("cli_logging")


def test_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--chains-dir",
        "--model",
        "--insecure",
        "--max-body-bytes",
        "--max-streams",
    ):
        assert option in out


def test_serve_refuses_a_public_address_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAINKIT_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2  # noqa: S104
    err = capsys.readouterr().err
    assert err.startswith("chainkit: error: refusing to serve the service on '0.0.0.0'")
    assert "--insecure" in err
    assert "CHAINKIT_API_TOKEN" in err
    assert len(err.strip().splitlines()) == 1


def test_serve_refuses_bad_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-streams", "0", "--port", "0"]) == 2
    assert "max_streams" in capsys.readouterr().err


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    """`chainkit serve --port 0` in a subprocess, with a token; its URL and stderr lines."""
    env = dict(os.environ, CHAINKIT_API_TOKEN=TOKEN)
    env.pop("CHAINKIT_MODEL", None)
    with serve_process(env=env) as served:
        yield served


def test_serve_end_to_end(served: tuple[str, list[str]]) -> None:
    url, lines = served
    assert url.startswith("http://127.0.0.1:")
    assert "bearer token required" in lines[0]
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/chains").status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"{url}/chains/haiku/invoke", json={"input": {"topic": "tea"}}, headers=headers, timeout=30
    )
    assert response.status_code == 200
    assert response.json()["output"]
    rid = response.headers["x-request-id"]
    deadline = 100
    while deadline and not any(rid in line for line in lines):
        threading.Event().wait(0.05)
        deadline -= 1
    access = next(line for line in lines if rid in line)
    assert '"route":"/chains/{name}/invoke"' in access
    assert TOKEN not in "\n".join(lines)


async def test_uvicorn_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`uvicorn --factory chainkit.server:create_app` builds the app from the environment."""
    monkeypatch.setenv("CHAINKIT_API_TOKEN", TOKEN)
    config = uvicorn.Config("chainkit.server:create_app", factory=True, lifespan="off")
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/chains")).status_code == 401
        response = await client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        assert response.json()["info"]["title"] == "chainkit"

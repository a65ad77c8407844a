"""The public names of chainkit.server (a deliberate list, isort-ordered like ruff's RUF022)."""

from __future__ import annotations

import chainkit.server


def test_public_names() -> None:
    assert chainkit.server.__all__ == [
        "TOKEN_ENV",
        "ServerSettings",
        "ServiceThread",
        "check_bind",
        "create_app",
        "is_loopback",
        "serve",
    ]
    for name in chainkit.server.__all__:
        assert getattr(chainkit.server, name) is not None

"""The binding guard both servers share: the service and the local model.

A server listens off loopback only with a credential (the service's token, the
local model's API key), or when its user says ``insecure``: anyone who can reach
an open port could use it.
"""

from __future__ import annotations

import ipaddress

from chainkit.errors import UnprotectedBindError

__all__ = ["check_bind", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(
    server: str,
    host: str,
    *,
    protected: bool,
    insecure: bool,
    token_env: str | None = None,
) -> None:
    """Refuse to serve the ``server`` on a non-loopback ``host`` unless ``protected``
    (it has a credential) or ``insecure``."""
    if not protected and not insecure and not is_loopback(host):
        raise UnprotectedBindError(server, host, token_env=token_env)

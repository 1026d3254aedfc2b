"""Who calls a front door, read from an HTTP request's headers (or, for the MCP stdio door, from
the environment), for the gateway to judge: the edge authenticates nobody itself.

- Credentials: ``Authorization: Bearer <token>`` is passed through, an API key (``hmk_...``) as
  ``x-api-key`` and anything else (a JWT) as ``authorization: Bearer``; an ``x-api-key`` header is
  passed through as it is. The gateway resolves the tenant, so tenant isolation is its own.
- ``X-Hivemesh-User``: the end user within the tenant (default ``default``).
- ``X-Hivemesh-Session``: the conversation; when absent each door picks one (see its module).
The gateway validates both ids (hivemesh.common.v1.Scope's patterns).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.client import bearer_credentials, credentials_from_env

DEFAULT_USER = "default"
USER_HEADER = "x-hivemesh-user"
SESSION_HEADER = "x-hivemesh-session"
_API_KEY_HEADER = "x-api-key"
_AUTHORIZATION_HEADER = "authorization"


@dataclass(frozen=True)
class Caller:
    # gRPC metadata carrying the caller's credentials to the gateway.
    metadata: tuple[tuple[str, str], ...]
    user_id: str
    # The session the caller named; None when the door should pick one.
    session_id: str | None = None


def caller_from_headers(headers: Mapping[str, str]) -> Caller:
    """The caller of an HTTP request (``headers`` with lower-case names, as Starlette gives them)."""
    metadata: list[tuple[str, str]] = []
    api_key = headers.get(_API_KEY_HEADER, "").strip()
    authorization = headers.get(_AUTHORIZATION_HEADER, "").strip()
    if api_key:
        metadata.append((_API_KEY_HEADER, api_key))
    elif authorization:
        scheme, _, token = authorization.partition(" ")
        # Another scheme goes through as it is, for the gateway to refuse with its own reason.
        metadata.extend(
            bearer_credentials(token)
            if scheme.lower() == "bearer"
            else [(_AUTHORIZATION_HEADER, authorization)]
        )
    return Caller(
        tuple(metadata),
        headers.get(USER_HEADER, "").strip() or DEFAULT_USER,
        headers.get(SESSION_HEADER, "").strip() or None,
    )


def caller_from_env(env: Mapping[str, str] | None = None) -> Caller:
    """The caller a local process acts for: ``HIVEMESH_API_KEY`` or ``HIVEMESH_TOKEN``, and
    ``HIVEMESH_USER`` and ``HIVEMESH_SESSION`` when set (as the CLI reads them)."""
    values = os.environ if env is None else env
    return Caller(
        tuple(credentials_from_env(values)),
        values.get("HIVEMESH_USER", "").strip() or DEFAULT_USER,
        values.get("HIVEMESH_SESSION", "").strip() or None,
    )

"""Which scope fields each call needs. The contract lets them be empty; the server decides here."""

from __future__ import annotations

from hivemesh.memory.model import Owner, SessionKey
from hivemesh.mesh.errors import InvalidArgument


def owner(tenant_id: str, user_id: str) -> Owner:
    """Long-term memories and records belong to a user of a tenant: both are required."""
    if not tenant_id:
        raise InvalidArgument.field("scope.tenant_id", "is required", reason="SCOPE_REQUIRED")
    if not user_id:
        raise InvalidArgument.field("scope.user_id", "is required", reason="SCOPE_REQUIRED")
    return Owner(tenant_id, user_id)


def session(tenant_id: str, user_id: str, session_id: str) -> SessionKey:
    """Short-term turns belong to a session: tenant, user and session are all required."""
    who = owner(tenant_id, user_id)
    if not session_id:
        raise InvalidArgument.field("scope.session_id", "is required", reason="SCOPE_REQUIRED")
    return SessionKey(who.tenant_id, who.user_id, session_id)


def counted(tenant_id: str, session_id: str) -> str:
    """A count of memory covers a tenant (or a user of it), never one session: the tenant is
    required and the session must be empty."""
    if not tenant_id:
        raise InvalidArgument.field("scope.tenant_id", "is required", reason="SCOPE_REQUIRED")
    if session_id:
        raise InvalidArgument.field(
            "scope.session_id", "must be empty: a count covers a tenant or one user of it"
        )
    return tenant_id

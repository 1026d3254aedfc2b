"""The record owner a tool that stores per-user data needs from the call's scope."""

from __future__ import annotations

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.model import ToolContext
from hivemesh.tool.ports import RecordOwner


def record_owner(context: ToolContext) -> RecordOwner:
    owner = context.owner
    for name, value in (("tenant_id", owner.tenant_id), ("user_id", owner.user_id)):
        if not value:
            raise InvalidArgument.field(
                f"scope.{name}", f"is required by {context.call.tool_name}", reason="SCOPE_REQUIRED"
            )
    return RecordOwner(owner.tenant_id, owner.user_id)

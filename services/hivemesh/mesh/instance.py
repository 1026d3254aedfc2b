"""What names a service process across restarts, so that its successor can take over at once
what a crashed predecessor held (queue claims, tool-call claims) instead of waiting for leases.

``HIVEMESH_INSTANCE_NAME`` if set (a pod or host name in a deployment), else the host and the
service's port: two live processes cannot listen on one port, and the process that listens on it
after a crash is the one that replaces the process that died. A port chosen at random (0) names
nothing: that process has no successor, and what it held is freed by its missed heartbeats or,
at worst, when its leases end. Nor does a shared port (``HIVEMESH_REUSE_PORT``): replicas listen
on it side by side, and a replica starting under the port's name would declare a live one dead
and free the claims it is still working on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from hivemesh.mesh.config import Settings


def successor_name(settings: Settings, service: str, env: Mapping[str, str] | None = None) -> str | None:
    explicit = (os.environ if env is None else env).get("HIVEMESH_INSTANCE_NAME", "").strip()
    if explicit:
        return f"{explicit}/{service}"
    port = settings.ports[service]
    if not port or settings.server.reuse_port:
        return None
    return f"{socket.gethostname()}:{port}/{service}"

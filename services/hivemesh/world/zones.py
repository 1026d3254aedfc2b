"""Time zones by IANA name: which names exist, the zone of a name, and the server's own zone (the
default for a user who never named one).
"""

from __future__ import annotations

import functools
import os
import zoneinfo
from pathlib import Path

from hivemesh.mesh.errors import InvalidArgument

UTC_NAME = "UTC"


@functools.cache
def _names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone name this machine knows ("Europe/Paris", "UTC")."""
    return name in _names()


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def zone(name: str, field: str) -> zoneinfo.ZoneInfo:
    """The zone named ``name``, which the caller sent as ``field``; INVALID_ARGUMENT naming the field
    (reason UNKNOWN_TIME_ZONE) when there is no such zone."""
    if not is_zone(name):
        raise InvalidArgument.field(
            field,
            f"{name!r} is not an IANA time zone name (such as 'Europe/Paris' or 'America/New_York')",
            reason="UNKNOWN_TIME_ZONE",
        )
    return _zone(name)


def check(name: str, field: str) -> None:
    """Refuse a non-empty ``name`` that is no time zone (see ``zone``)."""
    if name:
        zone(name, field)


def _from_localtime(path: Path) -> str | None:
    """The zone /etc/localtime links to (".../zoneinfo/Europe/Paris" -> "Europe/Paris")."""
    try:
        target = str(path.resolve())
    except OSError:
        return None
    marker = "/zoneinfo/"
    if marker not in target:
        return None
    name = target.split(marker, 1)[1]
    return name if is_zone(name) else None


@functools.cache
def server_zone() -> str:
    """This machine's time zone: ``TZ`` when it names a zone, else the one /etc/localtime links to,
    else UTC. Read once per process."""
    configured = os.environ.get("TZ", "").lstrip(":")
    if is_zone(configured):
        return configured
    return _from_localtime(Path("/etc/localtime")) or UTC_NAME

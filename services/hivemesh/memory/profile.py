"""The user's time zone, remembered in their profile: the record of kind ``profile`` and key
``time_zone`` holds ``{"time_zone": "Europe/Paris"}``.

``settle`` runs with every GetContext: a scope that names a zone has it remembered (written only when
it differs from the one kept), a scope that names none gets the remembered one. Zones read or written
are kept in this process for ``keep_s`` seconds, so a busy user's tasks do not each read the record;
a change made through another memory replica is seen here within that time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from hivemesh.memory.model import Owner
from hivemesh.memory.records import UNCONDITIONAL, StructuredRecords
from hivemesh.mesh.errors import NotFound
from hivemesh.world import zones

PROFILE_KIND = "profile"
TIME_ZONE_KEY = "time_zone"


class TimeZones:
    def __init__(
        self,
        records: StructuredRecords,
        *,
        clock: Callable[[], float],
        keep_s: float = 30.0,
        capacity: int = 10_000,
    ) -> None:
        self._records = records
        self._clock = clock
        self._keep_s = keep_s
        self._capacity = capacity
        self._kept: OrderedDict[Owner, tuple[str, float]] = OrderedDict()

    async def settle(self, owner: Owner, given: str, field: str = "scope.time_zone") -> str:
        """The user's zone: ``given`` (remembered from now on) when not empty, else the remembered
        one; empty when neither. An unknown ``given`` is INVALID_ARGUMENT naming ``field``."""
        zones.check(given, field)
        kept = self._recall(owner)
        if kept is None:
            kept = await self._read(owner)
            self._keep(owner, kept)
        if given and given != kept:
            await self._records.put(
                owner, PROFILE_KIND, TIME_ZONE_KEY, {"time_zone": given}, UNCONDITIONAL, None
            )
            self._keep(owner, given)
        return given or kept

    def changed(self, owner: Owner, kind: str, key: str) -> None:
        """A record was written or deleted through the API: forget a zone kept from before."""
        if kind == PROFILE_KIND and key == TIME_ZONE_KEY:
            self._kept.pop(owner, None)

    async def _read(self, owner: Owner) -> str:
        try:
            record = await self._records.get(owner, PROFILE_KIND, TIME_ZONE_KEY)
        except NotFound:
            return ""
        name = record.value.get("time_zone")
        return name if isinstance(name, str) and zones.is_zone(name) else ""

    def _recall(self, owner: Owner) -> str | None:
        held = self._kept.get(owner)
        if held is None or held[1] <= self._clock():
            return None
        self._kept.move_to_end(owner)
        return held[0]

    def _keep(self, owner: Owner, zone: str) -> None:
        self._kept[owner] = (zone, self._clock() + self._keep_s)
        self._kept.move_to_end(owner)
        while len(self._kept) > self._capacity:
            self._kept.popitem(last=False)

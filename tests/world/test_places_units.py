from __future__ import annotations

import pytest

from hivemesh.language.slots.units import normalize_unit
from hivemesh.mesh.errors import InvalidArgument
from hivemesh.world import zones
from hivemesh.world.places import zone_of
from hivemesh.world.units import UNIT_ALIASES, unit_alias


@pytest.mark.parametrize(
    ("place", "zone"),
    [
        ("Hanoi", "Asia/Bangkok"),  # GeoNames files Hanoi under Indochina Time's zone
        ("Cape Town", "Africa/Johannesburg"),
        ("ho chi minh city", "Asia/Ho_Chi_Minh"),
        ("Peking", "Asia/Shanghai"),
        ("Kathmandu", "Asia/Kathmandu"),
        ("Europe/Paris", "Europe/Paris"),
        ("paris", "Europe/Paris"),
        ("Paris, TX", "America/Chicago"),
        ("London", "Europe/London"),
        ("London, Canada", "America/Toronto"),
        ("Portland", "America/Los_Angeles"),
        ("Portland, Maine", "America/New_York"),
        ("St. Petersburg", "Europe/Moscow"),
        ("NYC", "America/New_York"),
    ],
)
def test_cities_resolve_from_the_city_database(place: str, zone: str) -> None:
    assert zone_of(place) == zone


def test_unknown_places_have_no_zone() -> None:
    assert zone_of("Atlantis") is None  # a town of 80,000 named alone
    assert zone_of("Atlantis, South Africa") == "Africa/Johannesburg"
    assert zone_of("asdkj qwe") is None
    assert zone_of("  ") is None


def test_every_alias_names_a_unit_the_language_service_reads() -> None:
    # The language service reads each alias as its value: the one table, not a copy of it.
    for alias, name in UNIT_ALIASES.items():
        assert normalize_unit(alias) == name, alias


def test_aliases_are_looked_up_in_any_case_and_spacing() -> None:
    assert unit_alias("Fl  OZ") == "fluid_ounce"
    assert unit_alias("KILOS") == "kilogram"
    assert unit_alias("celcius") == "degree_Celsius"
    assert unit_alias("nm") is None  # pint's nanometer; the nautical mile is "nmi"
    assert unit_alias("furlongz") is None


def test_the_server_zone_is_tz_then_localtime_then_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv("TZ", ":Asia/Kathmandu")
        zones.server_zone.cache_clear()
        assert zones.server_zone() == "Asia/Kathmandu"
        monkeypatch.setenv("TZ", "Nowhere/Special")
        zones.server_zone.cache_clear()
        assert zones.is_zone(zones.server_zone())  # /etc/localtime's zone, or UTC
    finally:
        monkeypatch.undo()
        zones.server_zone.cache_clear()


def test_zone_names_are_checked() -> None:
    zones.check("", "scope.time_zone")
    assert zones.zone("Europe/Paris", "scope.time_zone").key == "Europe/Paris"
    with pytest.raises(InvalidArgument) as caught:
        zones.check("Mars/Olympus_Mons", "scope.time_zone")
    assert (caught.value.reason, caught.value.metadata["field"]) == ("UNKNOWN_TIME_ZONE", "scope.time_zone")

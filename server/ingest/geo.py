"""Country lookup from a country .mmdb (GeoLite2 Country/City or the CC0 geo-whois-asn-country)."""

from __future__ import annotations

import ipaddress
import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict = {"path": None, "lookup": None}
# Answers by address: the same clients call again and again, and a dict hit is ten
# times cheaper than a tree walk in the .mmdb. Emptied when the database changes.
_answers: dict[str, str | None] = {}
MAX_ANSWERS = 200_000


def _open(path: str):
    """A function ip -> ISO country code, reading the file once per process."""
    import geoip2.database
    import geoip2.errors

    reader = geoip2.database.Reader(path)
    kind = reader.metadata().database_type
    if "GeoIP2" in kind or "GeoLite2" in kind:
        # geoip2 checks the database type: City files answer city(), Country files country().
        method = reader.city if "City" in kind else reader.country

        def lookup(ip: str) -> str | None:
            try:
                return method(ip).country.iso_code
            except (geoip2.errors.AddressNotFoundError, ValueError):
                return None

        return lookup

    # Other country databases (e.g. ip-location-db) have their own record shape;
    # geoip2 exposes the underlying maxminddb reader for them.
    raw = reader._db_reader

    def lookup(ip: str) -> str | None:
        try:
            record = raw.get(ip)
        except ValueError:
            return None
        if not record:
            return None
        code = record.get("country_code") or (record.get("country") or {}).get("iso_code")
        return code.upper()[:2] if isinstance(code, str) else None

    return lookup


def _carried_ipv4(ip: str) -> str:
    """The IPv4 address an IPv4-mapped IPv6 one carries (::ffff:8.8.8.8 -> 8.8.8.8), else `ip`.

    Dual-stack servers (Node, Java, Python bound to ::) report IPv4 clients this way, and
    the country databases hold IPv4 networks only at their IPv4 (or IPv4-compatible ::/96)
    addresses, so the mapped form was stored but never located.
    """
    if ":" not in ip or ("." not in ip and "ffff" not in ip.lower()):
        return ip  # plain IPv4, or IPv6 that cannot be mapped: no parsing
    try:
        mapped = ipaddress.IPv6Address(ip).ipv4_mapped
    except ValueError:
        return ip
    return ip if mapped is None else str(mapped)


def init_geo(path: str | None) -> None:
    """Open the database at `path` (or none); later lookups reuse it."""
    import maxminddb

    with _lock:
        if path == _state["path"] and _state["lookup"] is not None:
            return
        _state["path"] = path
        _state["lookup"] = None
        _answers.clear()
        if path:
            try:
                _state["lookup"] = _open(path)
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                log.error("cannot open GEOIP_DB %s (%s): locations stay empty", path, exc)


def country(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return _answers[ip]
    except KeyError:
        pass
    if _state["path"] is None and _state["lookup"] is None:
        from server.config import Config

        init_geo(Config.from_env().GEOIP_DB or "")
    lookup = _state["lookup"]
    answer = lookup(_carried_ipv4(ip)) if lookup else None
    if len(_answers) >= MAX_ANSWERS:
        _answers.clear()
    _answers[ip] = answer
    return answer


def countries(ips: list) -> list:
    """country() of each address in a column of them (None stays None)."""
    answers = _answers  # another thread may empty it: a miss is looked up, never wrong
    try:
        return list(map(answers.__getitem__, ips))  # every one answered before
    except KeyError:
        found = {ip: country(ip) for ip in set(ips)}
        return list(map(found.__getitem__, ips))

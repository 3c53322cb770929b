"""Country lookup from both database flavours, and user-agent classification."""

from __future__ import annotations

import pytest

from server.ingest import geo
from server.lake import agents as useragent
from tests.conftest import write_mmdb
from tests.helpers import CHROME, GOOGLEBOT, IPHONE


@pytest.fixture
def restore_geo():
    yield
    geo.init_geo("")


@pytest.mark.parametrize("flavour", ["geolite", "cc0"])
def test_both_database_flavours(tmp_path, flavour, restore_geo):
    geo.init_geo(str(write_mmdb(tmp_path / f"{flavour}.mmdb", flavour=flavour)))
    assert geo.country("8.8.8.8") == "US"
    assert geo.country("81.2.69.160") == "GB"
    assert geo.country("2001:db8::1") == "DE"
    assert geo.country("203.0.113.1") is None
    assert geo.country("not an ip") is None
    assert geo.country(None) is None


@pytest.mark.parametrize("flavour", ["geolite", "cc0"])
def test_ipv4_mapped_ipv6_addresses_are_located_like_their_ipv4(tmp_path, flavour, restore_geo):
    # As Node and dual-stack servers report IPv4 clients: located, not just stored.
    geo.init_geo(str(write_mmdb(tmp_path / f"{flavour}.mmdb", flavour=flavour)))
    assert geo.country("::ffff:8.8.8.8") == "US"
    assert geo.country("::FFFF:81.2.69.160") == "GB"
    assert geo.country("0:0:0:0:0:ffff:5.1.2.3") == "FR"
    assert geo.country("::ffff:808:808") == "US"  # the same address written in hex
    assert geo.country("::ffff:203.0.113.1") is None  # mapped, but in no network
    assert geo.country("2001:db8::ffff:8.8.8.8") == "DE"  # not mapped: an IPv6 address
    assert geo.country("::ffff:8.8.8.8.8") is None
    assert geo.country("8.8.8.8") == "US"


def test_answers_are_cached_per_database(tmp_path, restore_geo):
    geo.init_geo(str(write_mmdb(tmp_path / "cc0.mmdb", flavour="cc0")))
    assert geo.country("8.8.8.8") == "US"
    # A database holding other answers replaces the cached ones.
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="other")
    writer.insert_network(IPSet(["8.8.8.0/24"]), {"country_code": "CA"})
    writer.to_db_file(str(tmp_path / "moved.mmdb"))
    geo.init_geo(str(tmp_path / "moved.mmdb"))
    assert geo.country("8.8.8.8") == "CA"
    geo.init_geo("")
    assert geo.country("8.8.8.8") is None


def test_geolite_city_records(tmp_path, restore_geo):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    writer.insert_network(
        IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "US"}, "city": {"names": {"en": "X"}}}
    )
    writer.to_db_file(str(tmp_path / "city.mmdb"))
    geo.init_geo(str(tmp_path / "city.mmdb"))
    assert geo.country("8.8.8.8") == "US"


def test_missing_or_broken_database_leaves_locations_empty(tmp_path, restore_geo, caplog):
    geo.init_geo(str(tmp_path / "nope.mmdb"))
    assert geo.country("8.8.8.8") is None
    (tmp_path / "junk.mmdb").write_bytes(b"not a database")
    geo.init_geo(str(tmp_path / "junk.mmdb"))
    assert geo.country("8.8.8.8") is None
    assert "cannot open GEOIP_DB" in caplog.text


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME, ("Chrome", "Windows", "desktop", False)),
        (IPHONE, ("Mobile Safari", "iOS", "mobile", False)),
        (GOOGLEBOT, ("Googlebot", "Other", "bot", True)),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1",
            ("Mobile Safari", "iOS", "tablet", False),
        ),
        ("python-requests/2.32.3", ("Python Requests", "Other", "other", False)),
    ],
)
def test_user_agent_classification(agent, expected):
    assert useragent.parse(agent) == expected

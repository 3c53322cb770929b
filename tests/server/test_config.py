"""Settings: defaults, parsing of the environment, derived values and the refusals to start."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import server.config as config_module
from server.config import Config, ConfigError, current_config, normalise_database_url, use_config

PRODUCTION_FIX = {
    "DATABASE_URL": "DATABASE_URL=postgresql://user:password@host/database",
    "SECRET_KEY": "SECRET_KEY=$(openssl rand -hex 32) (the same in every process)",
}
SMTP_SHAPE = (
    "SMTP_URL must look like smtp://user:pass@host:587 (STARTTLS) or "
    "smtps://user:pass@host:465 (TLS)"
)
POSITIVE = [
    "MAX_BATCH",
    "MAX_BODY",
    "DATA_PAGE_SIZE",
    "RETENTION_DAYS",
    "MONITOR_INTERVAL_SECONDS",
    "LAKE_EXPORT_ROWS",
    "LAKE_FILE_ROWS",
    "ENGINE_MEMORY_MB",
]


def env(tmp_path, **values) -> dict:
    """An environment of its own for one test: its DATA_DIR, no generated secret on disk."""
    return {"DATA_DIR": str(tmp_path), "TESTING": "1", **values}


def refusal(environ: dict, **overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ, **overrides)
    return str(caught.value)


# --- defaults ------------------------------------------------------------------------------


def test_the_defaults_are_the_embedded_mode(tmp_path):
    config = Config.from_env(env(tmp_path))
    assert f"sqlite:///{tmp_path / 'analytics.db'}" == config.DATABASE_URL
    assert str(tmp_path / "lake") == config.LAKE_URL
    assert config.GEOIP_DB == "" and config.REDIS_URL == ""
    assert re.fullmatch(r"[0-9a-f]{64}", config.SECRET_KEY)
    assert (config.APP_ENV, config.production, config.embedded_queue, config.is_postgres) == (
        "development",
        False,
        True,
        False,
    )
    assert (config.MAX_BATCH, config.MAX_BODY, config.RATE_LIMIT_PER_MINUTE) == (
        10_000,
        10 * 1024 * 1024,
        0,
    )
    assert (config.KEY_ROTATION_GRACE_HOURS, config.MONITOR_TIMEOUT_SECONDS) == (24, 10)
    assert (config.LAKE_EXPORT_ROWS, config.LAKE_FILE_ROWS, config.ENGINE_MEMORY_MB) == (
        100_000,
        4_000_000,
        256,
    )
    assert (config.S3_REGION, config.LOG_LEVEL, config.ACCESS_LOG) == (
        "us-east-1",
        "INFO",
        "requests",
    )
    assert config.SEED_DEMO is True and config.MONITOR_ALLOW_PRIVATE is False
    assert config.TESTING is True and config.extra == {}


def test_constructed_by_keyword_it_holds_the_defaults_and_not_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_BATCH", "7")
    monkeypatch.setenv("APP_ENV", "production")
    config = Config(MAX_BATCH=5, TESTING=True)
    assert (config.MAX_BATCH, config.TESTING, config.APP_ENV) == (5, True, "development")
    assert config.DATABASE_URL == "" and str(config_module.DEFAULT_DATA_DIR) == config.DATA_DIR
    assert Config().MAX_BATCH == 10_000 and Config().extra == {}
    config.LAKE_EXPORT_SECONDS = 3600  # tests adjust a running stack's settings
    assert config.LAKE_EXPORT_SECONDS == 3600


# --- parsing the environment ---------------------------------------------------------------


def test_whole_numbers_flags_and_text_are_read_from_their_variables(tmp_path):
    config = Config.from_env(
        env(
            tmp_path,
            MAX_BATCH="25",
            RATE_LIMIT_PER_MINUTE=" 60 ",
            LAKE_FILE_ROWS="1_000",
            KEY_ROTATION_GRACE_HOURS="0",
            MONITOR_ALLOW_PRIVATE="yes",
            SEED_DEMO="0",
            LOG_LEVEL="DEBUG",
            SMTP_FROM="12345",
            REDIS_URL="redis://127.0.0.1:6379/0",
        )
    )
    assert (config.MAX_BATCH, config.RATE_LIMIT_PER_MINUTE, config.LAKE_FILE_ROWS) == (25, 60, 1000)
    assert config.KEY_ROTATION_GRACE_HOURS == 0
    assert config.MONITOR_ALLOW_PRIVATE is True and config.SEED_DEMO is False
    assert (config.LOG_LEVEL, config.SMTP_FROM) == ("DEBUG", "12345")
    assert config.embedded_queue is False


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", " on ", "yes\n"])
def test_a_flag_is_on_for_one_true_yes_on(tmp_path, raw):
    assert Config.from_env(env(tmp_path, MONITOR_ALLOW_PRIVATE=raw)).MONITOR_ALLOW_PRIVATE is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "", "2", "enabled", "y", "t"])
def test_a_flag_is_off_for_anything_else(tmp_path, raw):
    assert Config.from_env(env(tmp_path, SEED_DEMO=raw)).SEED_DEMO is False


@pytest.mark.parametrize("raw", ["abc", "1.5", "", "10k", "0x10"])
def test_a_malformed_whole_number_is_refused_in_one_line(tmp_path, raw):
    assert refusal(env(tmp_path, MAX_BATCH=raw)) == f"MAX_BATCH must be a whole number, not {raw!r}"


def test_a_malformed_whole_number_is_named_whichever_setting_it_is(tmp_path):
    message = refusal(env(tmp_path, TRUST_PROXY="two"))
    assert message == "TRUST_PROXY must be a whole number, not 'two'"


def test_unknown_variables_are_ignored(tmp_path):
    config = Config.from_env(
        env(tmp_path, NOT_A_SETTING="x", max_batch="abc", extra="{oops", Max_Batch="abc")
    )
    assert config.MAX_BATCH == 10_000 and config.extra == {}


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("raw", ["0", "-3"])
def test_sizes_and_intervals_must_be_positive(tmp_path, name, raw):
    assert refusal(env(tmp_path, **{name: raw})) == f"{name} must be positive, not {int(raw)}"


def test_the_rotation_grace_may_be_zero_but_not_negative(tmp_path):
    assert (
        Config.from_env(env(tmp_path, KEY_ROTATION_GRACE_HOURS="0")).KEY_ROTATION_GRACE_HOURS == 0
    )
    message = refusal(env(tmp_path, KEY_ROTATION_GRACE_HOURS="-1"))
    assert message == "KEY_ROTATION_GRACE_HOURS must be 0 or more, not -1"


def test_the_access_log_takes_three_values(tmp_path):
    for mode in ("requests", "all", "off"):
        assert mode == Config.from_env(env(tmp_path, ACCESS_LOG=mode)).ACCESS_LOG
    assert refusal(env(tmp_path, ACCESS_LOG="loud")) == (
        "ACCESS_LOG must be requests, all or off, not 'loud'"
    )


def test_production_refuses_to_guess_the_database_and_the_secret(tmp_path):
    tail = ", or unset APP_ENV for the embedded mode (SQLite under DATA_DIR)"
    both = refusal(env(tmp_path, APP_ENV="production"))
    assert both == (
        "DATABASE_URL and SECRET_KEY are required when APP_ENV=production: set "
        f"{PRODUCTION_FIX['DATABASE_URL']} and {PRODUCTION_FIX['SECRET_KEY']}{tail}"
    )
    no_secret = refusal(env(tmp_path, APP_ENV="production", DATABASE_URL="postgresql://db/x"))
    assert no_secret == (
        f"SECRET_KEY is required when APP_ENV=production: set {PRODUCTION_FIX['SECRET_KEY']}{tail}"
    )
    no_database = refusal(env(tmp_path, APP_ENV="production", SECRET_KEY="s"))
    assert no_database == (
        "DATABASE_URL is required when APP_ENV=production: set "
        f"{PRODUCTION_FIX['DATABASE_URL']}{tail}"
    )
    assert not (tmp_path / "analytics.db").exists() and not (tmp_path / "secret_key").exists()


def test_production_starts_with_both(tmp_path):
    config = Config.from_env(
        env(tmp_path, APP_ENV="production", DATABASE_URL="postgres://u:p@db/x", SECRET_KEY="s")
    )
    assert config.production and config.is_postgres and config.SECRET_KEY == "s"
    assert config.DATABASE_URL == "postgresql+psycopg://u:p@db/x"


# --- where the values come from ------------------------------------------------------------


def test_an_explicit_mapping_is_read_instead_of_the_process_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_BATCH", "abc")
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    config = Config.from_env({}, DATA_DIR=str(tmp_path), TESTING=True)
    assert (config.MAX_BATCH, config.APP_ENV, config.LOG_LEVEL) == (10_000, "development", "INFO")
    assert Config.from_env(env(tmp_path, MAX_BATCH="3")).MAX_BATCH == 3


def test_without_a_mapping_the_process_environment_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TESTING", "1")
    monkeypatch.setenv("MAX_BATCH", "77")
    monkeypatch.setenv("MONITOR_ALLOW_PRIVATE", "on")
    config = Config.from_env()
    assert (config.MAX_BATCH, config.MONITOR_ALLOW_PRIVATE, config.TESTING) == (77, True, True)
    monkeypatch.setenv("MAX_BATCH", "many")
    with pytest.raises(ConfigError, match=r"^MAX_BATCH must be a whole number, not 'many'$"):
        Config.from_env()


def test_overrides_beat_the_environment_and_are_checked_too(tmp_path):
    config = Config.from_env(env(tmp_path, MAX_BATCH="5", APP_ENV="production"), MAX_BATCH=9,
                             APP_ENV="development")  # fmt: skip
    assert (config.MAX_BATCH, config.production) == (9, False)
    assert refusal(env(tmp_path), MAX_BATCH=0) == "MAX_BATCH must be positive, not 0"
    assert Config.from_env({}, DATA_DIR=str(tmp_path), TESTING=True, extra={"a": 1}).extra == {
        "a": 1
    }


# --- derived values ------------------------------------------------------------------------


def test_the_secret_key_is_kept_under_data_dir_outside_tests(tmp_path):
    first = Config.from_env({"DATA_DIR": str(tmp_path)})
    path = tmp_path / "secret_key"
    assert path.read_text() == first.SECRET_KEY and path.stat().st_mode & 0o777 == 0o600
    assert Config.from_env({"DATA_DIR": str(tmp_path)}).SECRET_KEY == first.SECRET_KEY
    assert Config.from_env({"DATA_DIR": str(tmp_path), "SECRET_KEY": "given"}).SECRET_KEY == "given"


def test_tests_get_a_fresh_secret_and_leave_none_on_disk(tmp_path):
    one, two = Config.from_env(env(tmp_path)), Config.from_env(env(tmp_path))
    assert one.SECRET_KEY != two.SECRET_KEY and not (tmp_path / "secret_key").exists()


def test_the_geoip_database_is_found_under_data_dir(tmp_path):
    assert Config.from_env(env(tmp_path)).GEOIP_DB == ""
    (tmp_path / "geo-whois-asn-country.mmdb").write_bytes(b"")
    assert str(tmp_path / "geo-whois-asn-country.mmdb") == Config.from_env(env(tmp_path)).GEOIP_DB
    assert Config.from_env(env(tmp_path, GEOIP_DB="/x.mmdb")).GEOIP_DB == "/x.mmdb"


def test_explicit_database_and_store_are_kept(tmp_path):
    config = Config.from_env(
        env(tmp_path, DATABASE_URL="postgresql://u@h/d", LAKE_URL="s3://bucket/prefix")
    )
    assert config.DATABASE_URL == "postgresql+psycopg://u@h/d" and config.is_postgres
    assert config.LAKE_URL == "s3://bucket/prefix"


def test_database_urls_are_normalised_for_psycopg():
    assert normalise_database_url("postgres://h/d") == "postgresql+psycopg://h/d"
    assert normalise_database_url("postgresql://h/d") == "postgresql+psycopg://h/d"
    assert normalise_database_url("postgresql+psycopg://h/d") == "postgresql+psycopg://h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


# --- SMTP_URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://mail.example.com", SMTP_SHAPE),
        ("smtp://", SMTP_SHAPE),
        ("smtp:///no-host", SMTP_SHAPE),
        ("smtp://host:notaport", "SMTP_URL is malformed (smtp://user:pass@host:587)"),
        ("smtps://host:99999", "SMTP_URL is malformed (smtp://user:pass@host:587)"),
    ],
)
def test_a_malformed_smtp_url_stops_the_start_with_its_message(tmp_path, url, message):
    assert refusal(env(tmp_path, SMTP_URL=url)) == message


def test_a_wellformed_smtp_url_is_parsed_with_its_default_port(tmp_path):
    from server.alerts.smtp import parse_smtp_url

    config = Config.from_env(env(tmp_path, SMTP_URL="smtp://ops%40x.org:p%40ss@mail.example.com"))
    settings = parse_smtp_url(config.SMTP_URL)
    assert (settings.scheme, settings.host, settings.port) == ("smtp", "mail.example.com", 587)
    assert (settings.username, settings.password) == ("ops@x.org", "p@ss")
    assert repr(settings) == "SmtpSettings(smtp://mail.example.com:587)"
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    assert parse_smtp_url("smtps://mail.example.com:2465").port == 2465
    assert parse_smtp_url("smtp://mail.example.com").username is None


def test_smtp_url_parsing_lives_with_the_settings_and_is_still_importable_from_smtp():
    import server.alerts.smtp

    assert server.alerts.smtp.parse_smtp_url is config_module.parse_smtp_url
    assert server.alerts.smtp.SmtpSettings is config_module.SmtpSettings
    assert server.alerts.smtp.SCHEMES is config_module.SCHEMES == {"smtp": 587, "smtps": 465}


def test_the_settings_import_no_module_of_the_server():
    """server.alerts.smtp imports server.config; the other way round would be a cycle again."""
    tree = ast.parse(Path(config_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    assert not {name for name in imported if name and name.split(".")[0] == "server"}


# --- the process's settings ----------------------------------------------------------------


def test_use_config_makes_the_settings_current(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "_current", None)
    config = Config.from_env(env(tmp_path))
    assert use_config(config) is config and current_config() is config


def test_current_config_reads_the_environment_once(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "_current", None)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TESTING", "1")
    monkeypatch.setenv("MONITOR_LIMIT", "4")
    first = current_config()
    assert first.MONITOR_LIMIT == 4 and current_config() is first

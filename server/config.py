"""Settings, read from environment variables in one place and typed once, with pydantic-settings."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "data"
DEFAULT_GEOIP = "geo-whois-asn-country.mmdb"
SCHEMES = {"smtp": 587, "smtps": 465}


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


def normalise_database_url(url: str) -> str:
    """Let operators write plain postgresql:// URLs; we always drive psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class SmtpSettings:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never the password, wherever it is printed
        return f"SmtpSettings({self.scheme}://{self.host}:{self.port})"


def parse_smtp_url(url: str) -> SmtpSettings:
    """smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (implicit TLS)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("SMTP_URL is malformed (smtp://user:pass@host:587)") from exc
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(
            "SMTP_URL must look like smtp://user:pass@host:587 (STARTTLS) or "
            "smtps://user:pass@host:465 (TLS)"
        )
    return SmtpSettings(
        parts.scheme,
        parts.hostname,
        port or SCHEMES[parts.scheme],
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


class _Environment(PydanticBaseSettingsSource):
    """The variables named exactly like the settings, from `environ` (not always os.environ)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # `extra` is for code to fill; any variable of that name is someone else's.
        value = None if field_name == "extra" else self.environ.get(field_name)
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields.items()
        found = (self.get_field_value(field, name) for name, field in fields)
        return {name: value for value, name, _ in found if value is not None}


class Config(BaseSettings):
    """Every setting the server, worker and dashboard read.

    Each field maps to the upper-case environment variable of the same name.
    The defaults are the embedded mode: SQLite under ./data and jobs in-process.
    """

    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    SECRET_KEY: str = ""
    APP_ENV: str = "development"
    DATA_DIR: str = str(DEFAULT_DATA_DIR)
    GEOIP_DB: str = ""
    MAX_BATCH: int = 10_000
    MAX_BODY: int = 10 * 1024 * 1024
    RATE_LIMIT_PER_MINUTE: int = 0
    DATA_PAGE_SIZE: int = 50_000
    RETENTION_DAYS: int = 365
    KEY_INACTIVE_DAYS: int = 182
    # After a rotation the previous key is still accepted for ingest (only) this long.
    KEY_ROTATION_GRACE_HOURS: int = 24
    PING_RETENTION_DAYS: int = 90
    # Captured headers and bodies (docs/capture.md) are kept this long; exceptions and
    # validation errors as long as their requests.
    PAYLOAD_RETENTION_DAYS: int = 14
    MONITOR_LIMIT: int = 10
    MONITOR_INTERVAL_SECONDS: int = 300
    MONITOR_ALLOW_PRIVATE: bool = False
    # The whole check (DNS, connect, TLS, redirects, headers) must finish within this.
    MONITOR_TIMEOUT_SECONDS: int = 10
    SWEEP_AFTER_SECONDS: int = 60
    ADMIN_TOKEN: str = ""
    # Who may create keys (server.keys.signup): open (anyone; the embedded default), closed
    # (only an operator: the CLI or the admin API; the default when APP_ENV=production),
    # invite (also whoever holds an operator's single-use invite link).
    SIGNUP: str = ""
    # Keys made per client address per hour, however they are asked for (0: no limit).
    KEY_CREATE_PER_HOUR: int = 10
    # A dashboard session ends after this many days without a request, and this many after
    # its sign-in, whatever happens (server.keys.sessions).
    SESSION_IDLE_DAYS: int = 7
    SESSION_MAX_DAYS: int = 30
    # Caps on what one key may make (server.keys.caps; MONITOR_LIMIT is another).
    SHARE_LIMIT: int = 100
    SESSION_LIMIT: int = 20
    # Engine work one key may run at once in one web process, and how many more of its
    # requests may wait for it; past that, the key is told it is busy (server.lake.fair).
    ENGINE_KEY_SLOTS: int = 1
    ENGINE_KEY_QUEUE: int = 3
    # Alert emails (server.alerts): smtp://user:pass@host:587 (STARTTLS, required),
    # smtps://user:pass@host:465 (implicit TLS); unset, email channels cannot be created.
    SMTP_URL: str = ""
    SMTP_FROM: str = ""
    # The columnar store (server.lake): a directory (default DATA_DIR/lake) or s3://bucket/prefix.
    LAKE_URL: str = ""
    S3_ENDPOINT_URL: str = ""
    S3_ACCESS_KEY_ID: str = ""
    S3_SECRET_ACCESS_KEY: str = ""
    S3_REGION: str = "us-east-1"
    # Hot rows are exported to the store once this many wait, or the oldest is this old.
    LAKE_EXPORT_ROWS: int = 100_000
    LAKE_EXPORT_SECONDS: int = 10
    # Files replaced by compaction, and exported hot rows, stay readable this long.
    LAKE_GRACE_SECONDS: int = 120
    # Compaction merges a month's small files into files of up to this many rows.
    LAKE_FILE_ROWS: int = 4_000_000
    # The engine (DuckDB) of each process: memory it may hold (it spills beyond) and threads.
    ENGINE_MEMORY_MB: int = 256
    ENGINE_THREADS: int = 0
    # Ingest answers 429 (Retry-After) while more accepted rows than this wait to be written
    # or exported, or the oldest staged batch has waited longer (server.ingest.backlog);
    # 0 turns a bound off.
    INGEST_BACKLOG_ROWS: int = 1_000_000
    INGEST_LAG_SECONDS: int = 60
    # Exact answers kept for repeated dashboard views (server.stats.cache), in Redis when
    # REDIS_URL is set, else in each process; 0 turns the cache off.
    ANSWER_CACHE_MB: int = 64
    # Answers from closed months' summaries (server.stats.summaries), shared by every web
    # process in Redis when REDIS_URL is set; 0 leaves each process its own only.
    SUMMARY_CACHE_MB: int = 64
    # How many reverse proxies of ours stand in front, each adding X-Forwarded-For,
    # -Proto and -Host: the client address, scheme and host are taken from them.
    TRUST_PROXY: int = 0
    LOG_LEVEL: str = "INFO"
    # requests: every request but a page's successful plumbing (server.access_log); all; off.
    ACCESS_LOG: str = "requests"
    # `make run` creates the demo key's data on the first start and tops it up later.
    SEED_DEMO: bool = True
    TESTING: bool = False
    extra: dict = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Config(...) holds its keywords and the defaults, no more: the environment is read
        # by from_env alone, from the mapping it is given (tests pass {} to shut it out).
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _parse_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Text becomes a number by int() and a flag by 1/true/yes/on, as it always has:
        pydantic's own rules refuse a flag like `enabled` (off here) and report at length."""
        if not isinstance(value, str):
            return value
        kind = cls.model_fields[info.field_name].annotation
        if kind is bool:
            return value.strip().lower() in {"1", "true", "yes", "on"}
        if kind is int:
            try:
                return int(value)
            except ValueError as exc:
                # Not a ValueError, so pydantic lets it through as it is: one line for the
                # operator instead of a validation report.
                raise ConfigError(
                    f"{info.field_name} must be a whole number, not {value!r}"
                ) from exc
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Config:
        """Build a Config from the environment, then apply explicit overrides."""
        environ = os.environ if environ is None else environ
        config = cls(**{**_Environment(cls, environ)(), **overrides})
        config.finalise()
        return config

    @property
    def production(self) -> bool:
        return self.APP_ENV == "production"

    @property
    def embedded_queue(self) -> bool:
        """No Redis configured: jobs run on a thread inside the web process."""
        return not self.REDIS_URL

    @property
    def is_postgres(self) -> bool:
        return self.DATABASE_URL.startswith("postgresql")

    def finalise(self) -> None:
        """Fill derived defaults and refuse settings that cannot work."""
        data_dir = Path(self.DATA_DIR)
        self._require_production_settings()
        if not self.DATABASE_URL:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.DATABASE_URL = f"sqlite:///{data_dir / 'analytics.db'}"
        self.DATABASE_URL = normalise_database_url(self.DATABASE_URL)
        self._check_database_scheme()
        if not self.LAKE_URL:
            self.LAKE_URL = str(data_dir / "lake")
        if not self.GEOIP_DB:
            candidate = data_dir / DEFAULT_GEOIP
            self.GEOIP_DB = str(candidate) if candidate.exists() else ""
        if not self.SECRET_KEY:
            self.SECRET_KEY = self._local_secret(data_dir)
        for name in (
            "MAX_BATCH",
            "MAX_BODY",
            "DATA_PAGE_SIZE",
            "RETENTION_DAYS",
            "PAYLOAD_RETENTION_DAYS",
            "MONITOR_INTERVAL_SECONDS",
            "LAKE_EXPORT_ROWS",
            "LAKE_FILE_ROWS",
            "ENGINE_MEMORY_MB",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.SMTP_URL:
            parse_smtp_url(self.SMTP_URL)  # a malformed one stops the start, naming it
        if self.KEY_ROTATION_GRACE_HOURS < 0:
            raise ConfigError(
                f"KEY_ROTATION_GRACE_HOURS must be 0 or more, not {self.KEY_ROTATION_GRACE_HOURS}"
            )
        self._check_access_settings()
        if self.ACCESS_LOG not in ("requests", "all", "off"):
            raise ConfigError(f"ACCESS_LOG must be requests, all or off, not {self.ACCESS_LOG!r}")

    def _check_database_scheme(self) -> None:
        """PostgreSQL or SQLite, said in one line (a mysql:// URL died in a traceback)."""
        scheme, found, _rest = self.DATABASE_URL.partition("://")
        if scheme not in ("postgresql+psycopg", "sqlite"):
            shown = f"{scheme}://..." if found else "a URL without a scheme"
            raise ConfigError(
                f"DATABASE_URL must be postgresql://user:password@host/database or "
                f"sqlite:///path/to/file.db, not {shown}: PostgreSQL and "
                "SQLite are the databases this server runs on (unset it for SQLite under DATA_DIR)"
            )

    def _check_access_settings(self) -> None:
        """SIGNUP (closed in production unless said otherwise), session lifetimes, caps."""
        self.SIGNUP = (self.SIGNUP or ("closed" if self.production else "open")).strip().lower()
        if self.SIGNUP not in ("open", "closed", "invite"):
            raise ConfigError(f"SIGNUP must be open, closed or invite, not {self.SIGNUP!r}")
        for name in ("SESSION_IDLE_DAYS", "SESSION_MAX_DAYS", "SHARE_LIMIT", "SESSION_LIMIT",
                     "MONITOR_LIMIT", "ENGINE_KEY_SLOTS"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        for name in (
            "KEY_CREATE_PER_HOUR",
            "ENGINE_KEY_QUEUE",
            "ANSWER_CACHE_MB",
            "SUMMARY_CACHE_MB",
            "INGEST_BACKLOG_ROWS",
            "INGEST_LAG_SECONDS",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, not {getattr(self, name)}")

    def _require_production_settings(self) -> None:
        """APP_ENV=production refuses to guess: no SQLite file, no generated secret."""
        if not self.production:
            return
        fixes = {
            "DATABASE_URL": "DATABASE_URL=postgresql://user:password@host/database",
            "SECRET_KEY": "SECRET_KEY=$(openssl rand -hex 32) (the same in every process)",
        }
        missing = [name for name in fixes if not getattr(self, name)]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required when "
                f"APP_ENV=production: set {' and '.join(fixes[m] for m in missing)}, or unset "
                "APP_ENV for the embedded mode (SQLite under DATA_DIR)"
            )

    def _local_secret(self, data_dir: Path) -> str:
        """Keep dashboard sessions valid across restarts of an embedded install."""
        if self.TESTING:
            return secrets.token_hex(32)
        path = data_dir / "secret_key"
        data_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()


_current: Config | None = None


def use_config(config: Config) -> Config:
    """Make `config` this process's settings (create_app and the worker entry call this)."""
    global _current
    _current = config
    return config


def current_config() -> Config:
    """This process's settings, for jobs; a bare `rq worker` reads them from the environment."""
    global _current
    if _current is None:
        _current = Config.from_env()
    return _current

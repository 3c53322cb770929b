"""User-agent parsing (browser, OS, device type, bot) and the user_agents lookup table."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.lake.models import user_agents


class Agent(NamedTuple):
    id: int
    browser: str
    os: str
    device: str
    is_bot: bool


@lru_cache(maxsize=20_000)
def parse(user_agent: str) -> tuple[str, str, str, bool]:
    """(browser family, OS family, device type, is bot); the parser is slow, strings repeat."""
    from user_agents import parse as ua_parse

    ua = ua_parse(user_agent)
    if ua.is_bot:
        device = "bot"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    return ua.browser.family[:64], ua.os.family[:64], device, bool(ua.is_bot)


def warm() -> None:
    """Load the parser and its regular expressions now (about a second of CPU), not on the
    first batch a process is sent. Called at start-up; a forking server calls it before
    it forks, so its workers share the loaded parser."""
    parse("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)")


# Per database URL; only committed rows go in, so a rolled-back batch never
# leaves a dangling id behind.
_caches: dict[str, dict[str, Agent]] = {}
_ids_lock = threading.Lock()
MAX_CACHED = 200_000


def resolve(engine, strings: set[str]) -> dict[str, Agent]:
    """Map each user-agent string to its row, inserting new ones in a short transaction."""
    _ids = _caches.setdefault(str(engine.url), {})
    found = {s: _ids[s] for s in strings if s in _ids}
    missing = strings - found.keys()
    if not missing:
        return found
    values = []
    for s in sorted(missing):
        browser, os_family, device, is_bot = parse(s)
        values.append(
            {
                "user_agent": s,
                "browser": browser,
                "os": os_family,
                "device": device,
                "is_bot": is_bot,
            }
        )
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        conn.execute(
            insert(user_agents).on_conflict_do_nothing(index_elements=["user_agent"]), values
        )
        rows = conn.execute(
            select(
                user_agents.c.user_agent,
                user_agents.c.id,
                user_agents.c.browser,
                user_agents.c.os,
                user_agents.c.device,
                user_agents.c.is_bot,
            ).where(user_agents.c.user_agent.in_(missing))
        ).all()
    with _ids_lock:
        if len(_ids) > MAX_CACHED:
            _ids.clear()
        for row in rows:
            agent = Agent(row.id, row.browser, row.os, row.device, bool(row.is_bot))
            _ids[row.user_agent] = agent
            found[row.user_agent] = agent
    return found


def forget() -> None:
    """Drop cached ids (tests that recreate a database under the same URL)."""
    with _ids_lock:
        _caches.clear()


def describe(strings: set[str], engine=None) -> dict[str, tuple[str, str, str]]:
    """(browser, OS, device) of each agent as enrichment stored it on its rows: the
    user_agents table's values (read, never written, here), else a fresh parse."""
    from server.db import get_engine

    engine = engine or get_engine()
    cache = _caches.setdefault(str(engine.url), {})
    out = {s: (a.browser, a.os, a.device) for s in strings if (a := cache.get(s))}
    missing = sorted(strings - out.keys())
    columns = (user_agents.c.user_agent, user_agents.c.browser, user_agents.c.os,
               user_agents.c.device)  # fmt: skip
    with engine.connect() as conn:
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            query = select(*columns).where(user_agents.c.user_agent.in_(chunk))
            for agent, browser, os_family, device in conn.execute(query):
                out[agent] = (browser, os_family, device)
    for s in missing:
        if s not in out:
            browser, os_family, device, _bot = parse(s)
            out[s] = (browser, os_family, device)
    return out

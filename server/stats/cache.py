"""Exact answers kept for a repeated view, shared by every web process.

An answer is stored under what it was computed from: the catalog snapshot it read (its
files and boundary), the hot rows past that boundary (how many, and the newest id), and
the question (the key, the period's resolved window, the filters). A view is answered
from the store only when the key's rows are, right now, that same state: any row that
arrives, any export, compaction, erase or retention changes the fingerprint, and the
view is computed anew. An entry carries its whole fingerprint and question, checked on
every read, so a digest collision cannot hand one view another's answer.

Where: Redis when REDIS_URL is set (every gunicorn worker shares it), else this process's
memory. Both are bounded by ANSWER_CACHE_MB, oldest first out; ANSWER_CACHE_MB=0 turns
the cache off. Hand-written rather than a caching library: the bound is in bytes across
processes, which Flask-Caching's Redis backend leaves to Redis' own global maxmemory, and
the memory side is a 20-line LRU (an OrderedDict) that needs no new dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from server.config import current_config
from server.db import get_engine
from server.lake import catalog
from server.lake.models import requests as hot_requests

log = logging.getLogger(__name__)

PREFIX = "apia:answers:"
# A RedisStore's keys besides its entries, under its prefix: "index" (zset: entry name ->
# when stored), "sizes" (hash: entry name -> bytes), "total" (bytes held, counted on store).
TOTAL = PREFIX + "total"
TTL_SECONDS = 3600  # a window moves on within the hour: older entries can no longer hit

# Store one entry and drop the oldest until the total fits, atomically across processes.
_PUT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('DECRBY', KEYS[3], old) end
redis.call('SET', ARGV[1], ARGV[2], 'EX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], string.len(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
local total = redis.call('INCRBY', KEYS[3], string.len(ARGV[2]))
while total > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[1])
  if #oldest == 0 then break end
  local size = redis.call('HGET', KEYS[2], oldest[1])
  redis.call('HDEL', KEYS[2], oldest[1])
  redis.call('DEL', oldest[1])
  if size then total = redis.call('DECRBY', KEYS[3], size) end
end
return total
"""


def fingerprint_of(snapshot: catalog.Snapshot, hot_rows: int, newest_hot_id: int | None) -> str:
    """The state of a key's rows a reader saw: the snapshot's files, its boundary, and the
    hot rows past it (rows are only appended with growing ids, or deleted: either moves
    the count or the newest id)."""
    files = ",".join(str(f.id) for f in sorted(snapshot.files, key=lambda f: f.id))
    return f"k{snapshot.key_id}|b{snapshot.exported_id}|f{files}|h{hot_rows}:{newest_hot_id or 0}"


def current_fingerprint(key_id: int) -> str:
    """The key's rows' state now, from the catalog and the hot table (two small queries;
    the hot table holds only the rows not yet exported, and is indexed by key and id)."""
    with get_engine().connect() as conn:
        snap = catalog.snapshot(conn, key_id)
        count, newest = conn.execute(
            select(func.count(), func.max(hot_requests.c.id)).where(
                hot_requests.c.key_id == key_id, hot_requests.c.id > snap.exported_id
            )
        ).one()
    return fingerprint_of(snap, int(count), newest)


class MemoryStore:
    """This process's entries, least recently used out first, bounded in bytes."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        with self.lock:
            blob = self.entries.get(name)
            if blob is not None:
                self.entries.move_to_end(name)
            return blob

    def put(self, name: str, blob: bytes) -> None:
        with self.lock:
            old = self.entries.pop(name, None)
            self.size -= len(old) if old is not None else 0
            self.entries[name] = blob
            self.size += len(blob)
            while self.size > self.limit and self.entries:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0


class RedisStore:
    """Entries in Redis, shared by every process, bounded in bytes (oldest stored out).
    `prefix` names its entries, its index and its count (server.stats.summaries keeps
    its own under another)."""

    def __init__(
        self, url: str, limit_bytes: int, prefix: str = PREFIX, ttl: int = TTL_SECONDS
    ) -> None:
        from redis import Redis

        self.redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.limit, self.prefix, self.ttl = limit_bytes, prefix, ttl
        self.keys = [prefix + "index", prefix + "sizes", prefix + "total"]
        self.script = self.redis.register_script(_PUT)

    def get(self, name: str) -> bytes | None:
        return self.redis.get(name)

    def put(self, name: str, blob: bytes) -> None:
        self.script(keys=self.keys, args=[name, blob, self.ttl, time.time(), self.limit])

    def clear(self) -> None:
        names = list(self.redis.scan_iter(match=self.prefix + "*"))
        if names:
            self.redis.delete(*names)


_lock = threading.Lock()
_state: dict = {"pid": None, "signature": None, "store": None}
# This process's hits and misses (the tests and bench/browser.py read them).
counts = {"hit": 0, "miss": 0}


def store():
    """This process's way to the shared entries (None when the cache is off)."""
    settings = current_config()
    signature = (settings.REDIS_URL, settings.ANSWER_CACHE_MB)
    with _lock:
        if _state["pid"] != os.getpid() or _state["signature"] != signature:
            limit = settings.ANSWER_CACHE_MB * 1024 * 1024
            if not limit:
                found = None
            elif settings.REDIS_URL:
                found = RedisStore(settings.REDIS_URL, limit)
            else:
                found = MemoryStore(limit)
            _state.update(pid=os.getpid(), signature=signature, store=found)
        return _state["store"]


def _name(fingerprint: str, question: str) -> str:
    digest = hashlib.sha256(f"{fingerprint}\n{question}".encode()).hexdigest()
    return PREFIX + digest


def _seal(payload: bytes) -> bytes:
    return hmac.new(current_config().SECRET_KEY.encode(), payload, hashlib.sha256).digest()


def sealed(entry) -> bytes:
    """The entry pickled, behind an HMAC of SECRET_KEY: whoever can write to Redis but
    lacks the secret cannot have the web processes unpickle what they wrote."""
    payload = pickle.dumps(entry, protocol=5)
    return _seal(payload) + payload


def unsealed(blob: bytes):
    mac, payload = blob[:32], blob[32:]
    if not hmac.compare_digest(mac, _seal(payload)):
        raise ValueError("its seal does not match this server's SECRET_KEY")
    return pickle.loads(payload)  # noqa: S301 - sealed by our own SECRET_KEY above


def deployment() -> str:
    """Which database and store the ids belong to (two installs may share one Redis; their
    key and file ids overlap). Hashed: the URL may hold a password."""
    settings = current_config()
    where = f"{settings.DATABASE_URL}\n{settings.LAKE_URL}".encode()
    return hashlib.sha256(where).hexdigest()[:16]


MISSING = object()  # read_entry's answer when there is no entry to use


def read_entry(found, name: str, expected: tuple) -> Any:
    """The value of the sealed entry `name` (a tuple: what it was stored for, then the
    value) when what it was stored for equals `expected`, else MISSING: absent, stored
    for something else, or unreadable (Redis gone, another version's, forged). A store
    that fails costs the shortcut, never the answer."""
    try:
        blob = found.get(name)
    except Exception as exc:
        log.warning("cache unreadable, computing instead: %s", exc)
        return MISSING
    if blob is None:
        return MISSING
    try:
        *stored_for, value = unsealed(blob)
    except Exception as exc:  # written by another version of the code, or forged
        log.warning("cache entry unreadable, computing instead: %s", exc)
        return MISSING
    return value if tuple(stored_for) == expected else MISSING


def write_entry(found, name: str, entry: tuple, largest: int | None = None) -> None:
    """Store `entry` sealed under `name` (not when its bytes exceed `largest`); a store
    that fails is logged, never raised."""
    try:
        blob = sealed(entry)
        if largest is None or len(blob) <= largest:
            found.put(name, blob)
    except Exception as exc:
        log.warning("cache entry not written: %s", exc)


def remembered(key_id: int, question: str, compute: Callable[[], tuple[Any, str]]) -> Any:
    """The answer to `question` about the key's rows as they are now: a stored one computed
    from exactly this state, or `compute()`'s, which returns (answer, the fingerprint of
    the rows it read) and is stored under that fingerprint."""
    found = store()
    if found is None:
        return compute()[0]
    question = f"{deployment()}|{question}"
    now = current_fingerprint(key_id)
    value = read_entry(found, _name(now, question), (now, question))
    if value is not MISSING:
        counts["hit"] += 1
        return value
    counts["miss"] += 1
    value, read = compute()
    write_entry(found, _name(read, question), (read, question, value))
    return value


def clear() -> None:
    """Forget every entry (tests, and an operator after a restore from backup)."""
    found = store()
    if found is not None:
        found.clear()

"""A key's deploys: checked, stored, listed and deleted.

Shared by the API (server.api.deploys) and the dashboard. A key keeps its newest
DEPLOY_LIMIT deploys; older ones go as new ones come. Our client reports its app's version
at each start (`record_if_changed`): a deploy is recorded only when the version differs
from the last one recorded for the key and hostname, so four workers starting with one
version, or a restart, make one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select

from server.db import as_utc, utcnow
from server.deploys.models import deploys
from server.keys.caps import hold_key_row

DEPLOY_LIMIT = 10_000
# A deploy may be dated a little ahead of our clock (the sender's runs fast), not more.
AHEAD = timedelta(minutes=5)


class DeployInputError(ValueError):
    """A deploy that cannot be stored; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid field '{field}': {problem}")
        self.field = field


def us(moment: datetime) -> int:
    """Epoch microseconds, exactly."""
    return int(moment.replace(microsecond=0).timestamp()) * 1_000_000 + moment.microsecond


def check_deploy(deploy: dict, now: datetime) -> dict:
    """The deploy's stored fields; raises DeployInputError naming the first bad one."""
    version = (deploy.get("version") or "").strip()
    if not version:
        raise DeployInputError("version", "required.")
    if len(version) > 100:
        raise DeployInputError("version", "at most 100 characters.")
    moment = deploy.get("time") or now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    if moment > now + AHEAD:
        raise DeployInputError("time", "is in the future.")
    description = (deploy.get("description") or "").strip() or None
    if description and len(description) > 2000:
        raise DeployInputError("description", "at most 2000 characters.")
    hostname = (deploy.get("hostname") or "").strip() or None
    if hostname and len(hostname) > 255:
        raise DeployInputError("hostname", "at most 255 characters.")
    for field, value in (("version", version), ("description", description),
                         ("hostname", hostname)):  # fmt: skip
        if value and "\x00" in value:
            raise DeployInputError(field, "holds a NUL character.")
    return {"version": version, "deployed_at": us(moment), "description": description,
            "hostname": hostname}  # fmt: skip


def create_deploy(conn, key_id: int, deploy: dict) -> dict:
    """Check and insert a deploy (inside a transaction), dropping the key's oldest beyond
    DEPLOY_LIMIT."""
    values = check_deploy(deploy, utcnow())
    deploy_id = conn.execute(
        insert(deploys).values(key_id=key_id, created_at=utcnow(), **values).returning(deploys.c.id)
    ).scalar_one()
    count = conn.execute(
        select(func.count()).select_from(deploys).where(deploys.c.key_id == key_id)
    ).scalar_one()
    if count > DEPLOY_LIMIT:
        oldest = (
            select(deploys.c.id)
            .where(deploys.c.key_id == key_id)
            .order_by(deploys.c.deployed_at, deploys.c.id)
            .limit(count - DEPLOY_LIMIT)
        )
        conn.execute(delete(deploys).where(deploys.c.id.in_(oldest.scalar_subquery())))
    return get_deploy(conn, key_id, deploy_id)


def record_if_changed(conn, key_id: int, deploy: dict) -> tuple[dict, bool]:
    """(the deploy, True) when recorded; (the last one recorded for the key and hostname,
    False) when that one has the same version. Inside a transaction: the key row is held
    until it ends, so of several reports at once one records and the others find it."""
    values = check_deploy(deploy, utcnow())
    hold_key_row(conn, key_id)
    d = deploys.c
    host = d.hostname.is_(None) if values["hostname"] is None else d.hostname == values["hostname"]
    last = conn.execute(
        select(deploys).where(d.key_id == key_id, host).order_by(d.id.desc()).limit(1)
    ).first()
    if last is not None and last.version == values["version"]:
        return _deploy_dict(last), False
    return create_deploy(conn, key_id, deploy), True


def _deploy_dict(row) -> dict:
    found = dict(row._mapping)
    found.pop("key_id", None)
    found["created_at"] = as_utc(found["created_at"])
    found["time"] = from_us(found["deployed_at"])
    return found


def from_us(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def list_deploys(
    conn,
    key_id: int,
    since_us: int | None = None,
    until_us: int | None = None,
    hostname: str | None = None,
    limit: int = 100,
) -> list[dict]:
    """The key's deploys in [since, until), newest first; with `hostname`, those to it and
    those to every host."""
    d = deploys.c
    query = select(deploys).where(d.key_id == key_id)
    if since_us is not None:
        query = query.where(d.deployed_at >= since_us)
    if until_us is not None:
        query = query.where(d.deployed_at < until_us)
    if hostname:
        query = query.where((d.hostname == hostname) | d.hostname.is_(None))
    rows = conn.execute(query.order_by(d.deployed_at.desc(), d.id.desc()).limit(limit)).all()
    return [_deploy_dict(r) for r in rows]


def get_deploy(conn, key_id: int, deploy_id: int) -> dict | None:
    row = conn.execute(
        select(deploys).where(deploys.c.id == deploy_id, deploys.c.key_id == key_id)
    ).first()
    return None if row is None else _deploy_dict(row)


def previous_deploy(conn, key_id: int, deploy: dict) -> dict | None:
    """The deploy before this one (to the same host or every host)."""
    d = deploys.c
    query = select(deploys).where(
        d.key_id == key_id,
        (d.deployed_at < deploy["deployed_at"])
        | ((d.deployed_at == deploy["deployed_at"]) & (d.id < deploy["id"])),
    )
    if deploy["hostname"]:
        query = query.where((d.hostname == deploy["hostname"]) | d.hostname.is_(None))
    row = conn.execute(query.order_by(d.deployed_at.desc(), d.id.desc()).limit(1)).first()
    return None if row is None else _deploy_dict(row)


def delete_deploy(conn, key_id: int, deploy_id: int) -> bool:
    found = conn.execute(
        delete(deploys).where(deploys.c.id == deploy_id, deploys.c.key_id == key_id)
    )
    return found.rowcount > 0

"""Alembic environment: the URL comes from server.cli, the tables from server.models and
server.lake.models."""

from alembic import context

import server.lake.models  # noqa: F401  (registers the store's tables on the metadata)
import server.models  # noqa: F401  (and every other table)
from server.db import make_engine, metadata

config = context.config


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), pooled=False)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A migration that rebuilds a table (SQLite's only way to change most things)
            # drops the old one: with foreign keys on, that drop would cascade into every
            # table that refers to it. Off for the run (outside any transaction, where
            # SQLite honours it), and checked afterwards.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

"""Alembic environment: the URL comes from server.cli, the tables from server.models."""

from alembic import context

import server.models  # noqa: F401  (registers every table on the metadata)
from server.db import make_engine, metadata

config = context.config


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), pooled=False)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

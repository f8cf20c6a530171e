"""Alembic environment.

From the app (db/migrate.py): runs on the connection handed over in config.attributes["connection"],
inside the one transaction that db.migrate.schema_transaction holds open, so a failed upgrade changes nothing.
From the alembic command line (developers): opens the URL in alembic.ini and uses the same transaction.
"""
from alembic import context
from sqlalchemy import create_engine

from db.migrate import schema_transaction
from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # The caller's transaction covers the DDL on SQLite too (Alembic assumes SQLite cannot).
        transactional_ddl=True,
    )
    with context.begin_transaction():  # inside the caller's transaction: Alembic opens none of its own
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection, schema_transaction(connection):
        run_on(connection)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

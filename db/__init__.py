"""Storage layer: settings, SQLAlchemy models, engine/session, migrations and shared queries.

`db` imports nothing from `app`, `datagen` or `training`; they all import from here.
"""

"""publish a run: training_runs.published_at (the reader's Recommend tab answers with the published run)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place (no batch rebuild of a table others reference).
    op.add_column('training_runs', sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('published_at')

"""generation jobs: failed API calls and why samples were not accepted, by reason

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs that already exist get 0 and {}: their old counters (rejected, duplicates...) stay as they were.
    # Plain literal defaults let SQLite add the columns in place (ALTER TABLE ADD COLUMN), without a batch
    # rebuild of a table that samples and api_calls reference.
    with op.batch_alter_table('generation_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_calls', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reasons', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('generation_jobs', schema=None) as batch_op:
        batch_op.drop_column('reasons')
        batch_op.drop_column('failed_calls')

"""workers: one cooperative stop flag on every worker's row (stop_requested), sweeps as rows of their own

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain rename (SQLite >= 3.25, PostgreSQL): a batch rebuild of generation_jobs would drop the table that
    # samples and api_calls reference.
    op.execute("ALTER TABLE generation_jobs RENAME COLUMN cancel_requested TO stop_requested")
    # Literal defaults let SQLite add the columns in place (ALTER TABLE ADD COLUMN), without a batch rebuild.
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_requested', sa.Boolean(), nullable=False, server_default='0'))
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_requested', sa.Boolean(), nullable=False, server_default='0'))
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('grid', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('stop_requested', sa.Boolean(), nullable=False),
    sa.Column('log_path', sa.String(length=1000), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'completed', 'failed', 'stopped', 'cancelled')",
                       name='sweep_status'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_sweeps_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_status'))
        batch_op.drop_index(batch_op.f('ix_sweeps_name'))
    op.drop_table('sweeps')
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.drop_column('stop_requested')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('stop_requested')
    op.execute("ALTER TABLE generation_jobs RENAME COLUMN stop_requested TO cancel_requested")

"""evaluation on request sets: eval_runs.mode/request_set/requests, eval_results.request_index/ttft_s

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing evaluations are eval-split ones: the server default fills the new column for them.
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=16), server_default='split', nullable=False))
        batch_op.add_column(sa.Column('request_set', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('requests', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_eval_runs_request_set'), ['request_set'], unique=False)
        batch_op.create_check_constraint('eval_mode', "mode IN ('split', 'requests')")
    # A request-set answer has no sample: sample_id becomes optional, request_index names the request.
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.alter_column('sample_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('request_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('ttft_s', sa.Float(), nullable=True))
        batch_op.create_unique_constraint('uq_eval_results_run_request', ['eval_run_id', 'request_index'])


def downgrade() -> None:
    op.execute("DELETE FROM eval_results WHERE sample_id IS NULL")
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.drop_constraint('uq_eval_results_run_request', type_='unique')
        batch_op.drop_column('ttft_s')
        batch_op.drop_column('request_index')
        batch_op.alter_column('sample_id', existing_type=sa.Integer(), nullable=False)
    op.execute("DELETE FROM eval_runs WHERE mode = 'requests'")
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.drop_constraint('eval_mode', type_='check')
        batch_op.drop_index(batch_op.f('ix_eval_runs_request_set'))
        batch_op.drop_column('requests')
        batch_op.drop_column('request_set')
        batch_op.drop_column('mode')

"""generator: api calls, request index, clusters, job counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Columns added to tables that may hold rows get server defaults, or NOT NULL would refuse them.
    op.create_table('api_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('request_index', sa.Integer(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('response_raw', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_s', sa.Float(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('batch', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['generation_jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_calls_job_id'), ['job_id'], unique=False)

    with op.batch_alter_table('generation_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ungrounded', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('tokens_in', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('tokens_out', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('cost_usd', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('batch_state', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('log_path', sa.String(length=1000), nullable=True))

    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cluster_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_samples_cluster_id'), ['cluster_id'], unique=False)
        batch_op.create_unique_constraint('uq_samples_job_request', ['job_id', 'request_index'])



def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_constraint('uq_samples_job_request', type_='unique')
        batch_op.drop_index(batch_op.f('ix_samples_cluster_id'))
        batch_op.drop_column('cluster_id')
        batch_op.drop_column('request_index')

    with op.batch_alter_table('generation_jobs', schema=None) as batch_op:
        batch_op.drop_column('log_path')
        batch_op.drop_column('batch_state')
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('cost_usd')
        batch_op.drop_column('tokens_out')
        batch_op.drop_column('tokens_in')
        batch_op.drop_column('ungrounded')

    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_calls_job_id'))

    op.drop_table('api_calls')

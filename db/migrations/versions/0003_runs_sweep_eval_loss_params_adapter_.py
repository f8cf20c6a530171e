"""runs: sweep, eval loss, params, adapter size, memory

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eval_loss', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('sweep', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('trainable_params', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('adapter_size_mb', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('peak_memory_mb', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('estimated_memory_mb', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_training_runs_sweep'), ['sweep'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_runs_sweep'))
        batch_op.drop_column('estimated_memory_mb')
        batch_op.drop_column('peak_memory_mb')
        batch_op.drop_column('adapter_size_mb')
        batch_op.drop_column('trainable_params')
        batch_op.drop_column('sweep')
        batch_op.drop_column('eval_loss')


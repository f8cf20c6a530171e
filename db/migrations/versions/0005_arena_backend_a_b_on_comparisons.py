"""arena: backend_a, backend_b on comparisons

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The two backends of a blind battle, in the order shown (A, B): the leaderboard reads them without
    # unpacking the results JSON, and an index lets it pick one backend's battles.
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backend_a', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('backend_b', sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_comparisons_backend_a'), ['backend_a'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparisons_backend_b'), ['backend_b'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparisons_backend_b'))
        batch_op.drop_index(batch_op.f('ix_comparisons_backend_a'))
        batch_op.drop_column('backend_b')
        batch_op.drop_column('backend_a')

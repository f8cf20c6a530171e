"""reader_feedback: a reader's thumbs up or down on a Recommend answer, per model

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reader_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=300), nullable=False),
    sa.Column('vote', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('titles', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("vote IN ('up', 'down')", name='feedback_vote'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reader_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_feedback_backend'), ['backend'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reader_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reader_feedback_backend'))
    op.drop_table('reader_feedback')

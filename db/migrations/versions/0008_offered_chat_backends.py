"""offered chat backends: the ones the operator added on the admin side

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_backends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=600), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('label')
    )


def downgrade() -> None:
    op.drop_table('chat_backends')

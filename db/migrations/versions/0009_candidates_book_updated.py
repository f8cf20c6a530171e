"""retrieval: training_runs.with_candidates, books.updated_at

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Whether a run's samples carried catalog candidates; NULL for older runs, read as "no candidates".
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('with_candidates', sa.Boolean(), nullable=True))
    # When a book last changed: the retrieval index is rebuilt when the catalog's latest change moves.
    with op.batch_alter_table('books', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_books_updated_at'), ['updated_at'], unique=False)
    op.execute("UPDATE books SET updated_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table('books', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_books_updated_at'))
        batch_op.drop_column('updated_at')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('with_candidates')

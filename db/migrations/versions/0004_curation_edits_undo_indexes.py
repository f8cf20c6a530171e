"""curation: original kept on edit, output length, undo log of bulk actions, indexes for 100k-row pages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('curation_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('new_status', sa.String(length=16), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('curation_action_rows',
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('old_status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['curation_actions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('action_id', 'sample_id')
    )
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_chars', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('original', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_samples_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_samples_grounded_count'), ['grounded_count'], unique=False)
        batch_op.create_index(batch_op.f('ix_samples_model'), ['model'], unique=False)
        batch_op.create_index(batch_op.f('ix_samples_output_chars'), ['output_chars'], unique=False)
        batch_op.create_index(batch_op.f('ix_samples_prompt_version'), ['prompt_version'], unique=False)
        batch_op.create_index('ix_samples_status_created', ['status', 'created_at'], unique=False)
    # Existing samples get their length now; the server default only served the ALTER.
    op.execute("UPDATE samples SET output_chars = length(output)")
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.alter_column('output_chars', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index('ix_samples_status_created')
        batch_op.drop_index(batch_op.f('ix_samples_prompt_version'))
        batch_op.drop_index(batch_op.f('ix_samples_output_chars'))
        batch_op.drop_index(batch_op.f('ix_samples_model'))
        batch_op.drop_index(batch_op.f('ix_samples_grounded_count'))
        batch_op.drop_index(batch_op.f('ix_samples_created_at'))
        batch_op.drop_column('edited_at')
        batch_op.drop_column('original')
        batch_op.drop_column('output_chars')
    op.drop_table('curation_action_rows')
    op.drop_table('curation_actions')

"""Initial schema (every table of mailer/store/schema.py) and the `main` and `preview` lists.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 16:33:01.256456
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_lists_name'))
    )
    op.create_table('rate_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_events'))
    )
    op.create_index(op.f('ix_rate_events_key_at'), 'rate_events', ['key', 'at'], unique=False)

    op.create_table('sns_messages',
    sa.Column('message_id', sa.String(length=100), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_sns_messages'))
    )
    op.create_table('subscribers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_norm', sa.String(length=320), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), server_default='cli', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('forgotten_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status in ('pending','subscribed','unsubscribed','bounced','complained')", name=op.f('ck_subscribers_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('email_hash', name=op.f('uq_subscribers_email_hash')),
    sa.UniqueConstraint('email_norm', name=op.f('uq_subscribers_email_norm'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), server_default='send', nullable=False),
    sa.Column('issue_number', sa.Integer(), nullable=False),
    sa.Column('issue_path', sa.Text(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.Column('html_bytes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pause_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_campaigns_list_id_lists')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index('uq_campaigns_issue_list_send', 'campaigns', ['issue_number', 'list_id'], unique=True, sqlite_where=sa.text("kind = 'send'"), postgresql_where=sa.text("kind = 'send'"))

    op.create_table('feedback_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ses_message_id', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_feedback_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events'))
    )
    op.create_index(op.f('ix_feedback_events_subscriber_id'), 'feedback_events', ['subscriber_id'], unique=False)

    op.create_table('history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('old_status', sa.String(length=16), nullable=True),
    sa.Column('new_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_history_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history'))
    )
    op.create_index(op.f('ix_history_subscriber_id'), 'history', ['subscriber_id'], unique=False)

    op.create_table('list_members',
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_list_members_list_id_lists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_list_members_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('list_id', 'subscriber_id', name=op.f('pk_list_members'))
    )
    op.create_index(op.f('ix_list_members_subscriber_id'), 'list_members', ['subscriber_id'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=True),
    sa.Column('event_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_deliveries_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_deliveries_subscriber_id_subscribers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('campaign_id', 'subscriber_id', name=op.f('uq_deliveries_campaign_id_subscriber_id'))
    )
    op.create_index(op.f('ix_deliveries_campaign_id_status'), 'deliveries', ['campaign_id', 'status'], unique=False)
    op.create_index(op.f('ix_deliveries_message_id'), 'deliveries', ['message_id'], unique=False)

    lists = sa.table("lists", sa.column("name", sa.String), sa.column("title", sa.String),
                     sa.column("created_at", sa.DateTime(timezone=True)))
    now = dt.datetime.now(dt.timezone.utc)
    op.bulk_insert(lists, [
        {"name": "main", "title": "This Week in Rust", "created_at": now},
        {"name": "preview", "title": "Editors (test sends)", "created_at": now},
    ])


def downgrade() -> None:
    op.drop_index(op.f('ix_deliveries_message_id'), table_name='deliveries')
    op.drop_index(op.f('ix_deliveries_campaign_id_status'), table_name='deliveries')

    op.drop_table('deliveries')
    op.drop_index(op.f('ix_list_members_subscriber_id'), table_name='list_members')

    op.drop_table('list_members')
    op.drop_index(op.f('ix_history_subscriber_id'), table_name='history')

    op.drop_table('history')
    op.drop_index(op.f('ix_feedback_events_subscriber_id'), table_name='feedback_events')

    op.drop_table('feedback_events')
    op.drop_index('uq_campaigns_issue_list_send', table_name='campaigns')

    op.drop_table('campaigns')
    op.drop_table('subscribers')
    op.drop_table('sns_messages')
    op.drop_index(op.f('ix_rate_events_key_at'), table_name='rate_events')

    op.drop_table('rate_events')
    op.drop_table('lists')

"""The database schema, one SQLAlchemy Core ``MetaData`` shared by every module.

Alembic migrations (``mailer/migrations``) create exactly these tables and
indexes (``full_metadata()``: a copy of the tables plus a partial index); tests
check the two never drift apart. Portable between SQLite and PostgreSQL: no
server-side enums, timestamps stored as timezone-aware UTC.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

TS = sa.DateTime(timezone=True)

lists = sa.Table(
    "lists", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", TS, nullable=False),
)

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Normalized address (lower-cased, IDNA domain): the identity. NULL once forgotten.
    sa.Column("email_norm", sa.String(320), unique=True),
    # What the person typed, for display and for the To: header. NULL once forgotten.
    sa.Column("email", sa.String(320)),
    # Keyed hash of email_norm: keeps a forgotten address suppressed.
    sa.Column("email_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),  # models.Status
    sa.Column("source", sa.String(32), nullable=False, server_default="cli"),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("forgotten_at", TS),
    sa.CheckConstraint("status in ('pending','subscribed','unsubscribed','bounced','complained')",
                       name="status"),
)

list_members = sa.Table(
    "list_members", metadata,
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("added_at", TS, nullable=False),
    sa.Index(None, "subscriber_id"),
)

# Append-only: every status change, with why (cli, import, unsubscribe-link, ses-bounce, ...).
history = sa.Table(
    "history", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("old_status", sa.String(16)),
    sa.Column("new_status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
)

campaigns = sa.Table(
    "campaigns", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False, server_default="send"),  # send | test
    sa.Column("issue_number", sa.Integer, nullable=False),
    sa.Column("issue_path", sa.Text, nullable=False),
    sa.Column("list_id", sa.Integer, sa.ForeignKey("lists.id")),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # models.CampaignStatus
    sa.Column("transport", sa.String(16), nullable=False),
    sa.Column("html_bytes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("pause_reason", sa.Text),
    # + uq_campaigns_issue_list_send, see full_metadata()
)

# The ledger: one row per recipient, claimed before the transport call.
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("email", sa.String(320)),  # frozen recipient address (NULL once forgotten)
    sa.Column("status", sa.String(16), nullable=False),  # models.DeliveryStatus
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(200)),  # transport id (SES MessageId)
    sa.Column("error", sa.Text),
    sa.Column("claimed_at", TS),
    sa.Column("sent_at", TS),
    sa.Column("event", sa.String(32)),  # last SES event: delivery, reject, delivery-delay, bounce, complaint
    sa.Column("event_at", TS),
    sa.UniqueConstraint("campaign_id", "subscriber_id"),
    sa.Index(None, "campaign_id", "status"),
    sa.Index(None, "message_id"),
)

# SNS MessageIds already processed (replays are answered 200 and ignored).
sns_messages = sa.Table(
    "sns_messages", metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("received_at", TS, nullable=False),
)

# SES feedback per subscriber (transient bounces are counted over a window).
feedback_events = sa.Table(
    "feedback_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
              index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # bounce-permanent, bounce-transient, complaint, ...
    sa.Column("at", TS, nullable=False),
    sa.Column("ses_message_id", sa.String(200)),
    sa.Column("detail", sa.Text),
)

# Sliding-window counters for the subscribe form (per address hash and per client).
rate_events = sa.Table(
    "rate_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(100), nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Index(None, "key", "at"),
)


@functools.cache
def full_metadata() -> sa.MetaData:
    """A copy of ``metadata`` with the partial unique index below: what migrations create and compare.

    One real send of an issue per list; test sends may repeat. The index is declared on a
    copy rather than in the table: SQLAlchemy imports a dialect's module to check a
    ``postgresql_where`` argument, and that import (20-40 ms) would be paid by every SQLite
    process that merely reads the schema (the web app's cold start, every CLI command). The
    store's queries do not need the index object; the database has it. A copy, so the
    tables the store uses stay as every other process sees them.
    """
    full = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(full)
    campaigns_ = full.tables["campaigns"]
    sa.Index("uq_campaigns_issue_list_send", campaigns_.c.issue_number, campaigns_.c.list_id, unique=True,
             sqlite_where=sa.text("kind = 'send'"), postgresql_where=sa.text("kind = 'send'"))
    return full

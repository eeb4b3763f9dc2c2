"""tokens stored as keyed digests; several tokens per user; token expiry; server_secrets

Existing clear tokens are replaced by their digests, so they keep working. The digest key is made
here, once, and stored in `server_secrets` (app/security.py says why there). A downgrade cannot
recover clear tokens: it deletes them all (users log in again, running runs lose their token).

Revision ID: 0005_tokens_hashed
Revises: 0005_order_json_columns
"""

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from alembic import op

revision: str = "0005_tokens_hashed"
down_revision: str | None = "0005_order_json_columns"
branch_labels = None
depends_on = None

SECRET_NAME = "token_hmac"


def upgrade() -> None:
    secrets_table = op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    secret = secrets.token_hex(32)
    op.bulk_insert(secrets_table, [{"name": SECRET_NAME, "value": secret}])
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    tokens = sa.table("tokens", sa.column("id", sa.Integer), sa.column("key"), sa.column("digest"))
    rows = conn.execute(sa.select(tokens.c.id, tokens.c.key)).all()
    if rows:
        conn.execute(
            tokens.update().where(tokens.c.id == sa.bindparam("row_id")),
            [
                {
                    "row_id": row_id,
                    "digest": hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest(),
                }
                for row_id, key in rows
            ],
        )
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_index(
            "uq_tokens_user_token",
            sqlite_where=sa.text("run_kind IS NULL"),
            postgresql_where=sa.text("run_kind IS NULL"),
        )
        batch_op.drop_constraint("uq_tokens_selector", type_="unique")
        batch_op.drop_column("selector")
        batch_op.drop_column("key")
        batch_op.alter_column("digest", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_tokens_digest"), ["digest"])


def downgrade() -> None:
    op.execute("DELETE FROM tokens")
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tokens_digest"), type_="unique")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("digest")
        batch_op.add_column(sa.Column("selector", sa.String(length=12), nullable=False))
        batch_op.add_column(sa.Column("key", sa.String(length=64), nullable=False))
        batch_op.create_unique_constraint(batch_op.f("uq_tokens_selector"), ["selector"])
        batch_op.create_index(
            "uq_tokens_user_token",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("run_kind IS NULL"),
            postgresql_where=sa.text("run_kind IS NULL"),
        )
    op.drop_table("server_secrets")

"""change feed (events, written by triggers) and reconcile leases

Revision ID: 0002_events_leases
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_events_leases"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, object type, SQL giving the project id from the row `R`)
ENTITIES = [
    ("projects", "project", "R.id"),
    ("experiment_groups", "group", "R.project_id"),
    ("experiments", "experiment", "R.project_id"),
    ("jobs", "job", "R.project_id"),
    ("build_jobs", "build", "R.project_id"),
]
# (status table, object type, fk column, SQL giving the project id from the row `R`)
STATUSES = [
    ("experiment_statuses", "experiment", "experiment_id",
     "(SELECT project_id FROM experiments WHERE id = R.experiment_id)"),
    ("experiment_group_statuses", "group", "experiment_group_id",
     "(SELECT project_id FROM experiment_groups WHERE id = R.experiment_group_id)"),
    ("job_statuses", "job", "job_id", "(SELECT project_id FROM jobs WHERE id = R.job_id)"),
    ("build_job_statuses", "build", "job_id",
     "(SELECT project_id FROM build_jobs WHERE id = R.job_id)"),
    ("experiment_job_statuses", "experiment_job", "job_id",
     "(SELECT e.project_id FROM experiment_jobs j JOIN experiments e ON e.id = j.experiment_id"
     " WHERE j.id = R.job_id)"),
]
METRIC_PROJECT = "(SELECT project_id FROM experiments WHERE id = R.experiment_id)"


def _triggers(pg: bool) -> list[tuple[str, str, str, str]]:
    """(trigger name, table, timing/op, INSERT statement over row `R`)."""
    obj = "json_build_object" if pg else "json_object"
    values = 'R."values"' if pg else 'json(R."values")'
    out = []
    for table, kind, project in ENTITIES:
        for op_name, when, row in (("created", "INSERT", "NEW"), ("deleted", "DELETE", "OLD")):
            name_col = "R.name"
            out.append((
                f"plx_ev_{table}_{op_name}", table, f"AFTER {when}",
                _insert(pg, row, project, op_name, kind, "R.id", "NULL",
                        f"{obj}('name', {name_col})"),
            ))
    for table, kind, fk, project in STATUSES:
        out.append((
            f"plx_ev_{table}", table, "AFTER INSERT",
            _insert(pg, "NEW", project, "status", kind, f"R.{fk}", "R.status",
                    f"{obj}('message', R.message)"),
        ))
    out.append((
        "plx_ev_experiment_metrics", "experiment_metrics", "AFTER INSERT",
        _insert(pg, "NEW", METRIC_PROJECT, "metric", "experiment", "R.experiment_id", "NULL",
                f"{obj}('values', {values})"),
    ))
    return out


def _insert(pg: bool, row: str, project: str, kind: str, obj_type: str, obj_id: str,
            status: str, data: str) -> str:
    txid = "pg_current_xact_id()::text::bigint" if pg else "0"
    now = "now()" if pg else "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    sql = (
        "INSERT INTO events (txid, project_id, kind, object_type, object_id, status, data,"
        f" created_at) SELECT {txid}, {project}, '{kind}', '{obj_type}', {obj_id}, {status},"
        f" {data}, {now} WHERE {project} IS NOT NULL"
    )
    return sql.replace("R.", f"{row}.")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_project_cursor", "events", ["project_id", "txid", "id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    for name, table, timing, body in _triggers(pg):
        if pg:
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"{body}; RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION {name}()"
            )
        else:
            op.execute(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW BEGIN {body}; END")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for name, table, _timing, _body in _triggers(pg):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if pg else ""))
        if pg:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("leases")
    op.drop_index("ix_events_project_cursor", table_name="events")
    op.drop_table("events")

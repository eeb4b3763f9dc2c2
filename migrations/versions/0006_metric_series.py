"""metric series: one table of each metric name's points with min/max tiers, and their heads

A chart of one metric used to read every metric row of the run (a JSON object per step). The
points of each name now also go into `metric_series` (level 0: every point; level k: the lowest
and highest point per bucket of 2^k points, see app/models/experiments.py), and
`metric_series_heads` counts each name's points and the run's. `experiment_metrics` stays as it
was (the v0 metric routes read it). The existing rows are copied here, in SQL; a downgrade drops
the two tables.

Revision ID: 0006_metric_series
Revises: 0005_tokens_hashed
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0006_metric_series"
down_revision: str | None = "0005_tokens_hashed"
branch_labels = None
depends_on = None

# As app/logic/downsample.py's TIER_LEVELS when this revision was written.
TIER_LEVELS = (4, 8, 12, 16)


def upgrade() -> None:
    op.create_table(
        "metric_series_heads",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_metric_series_heads_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "name", name=op.f("pk_metric_series_heads")),
    )
    op.create_table(
        "metric_series",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("step", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("high_step", sa.Float(), nullable=True),
        sa.Column("high_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("high_value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_metric_series_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "name", "level", "bucket", name=op.f("pk_metric_series")
        ),
    )
    op.create_index(
        "ix_metric_series_exp_name_level_step",
        "metric_series",
        ["experiment_id", "name", "level", "step"],
    )
    for statement in copy_statements(op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def copy_statements(postgres: bool) -> list[str]:
    """SQL that fills both tables from `experiment_metrics` (bench/bench_dashboard.py seeds
    with it too)."""
    if postgres:
        each = 'jsonb_each(m."values"::jsonb) AS e'
        numeric = "jsonb_typeof(e.value) = 'number'"
        value = "(e.value #>> '{}')::float"
        step_is_number = """jsonb_typeof(m."values"::jsonb -> 'step') = 'number'"""
        step = """(m."values"::jsonb ->> 'step')::float"""
    else:
        each = 'json_each(m."values") AS e'
        numeric = "e.type IN ('integer', 'real')"
        value = "e.value"
        step_is_number = "json_type(m.\"values\", '$.step') IN ('integer', 'real')"
        step = "json_extract(m.\"values\", '$.step')"
    # Every point in the run's order; a point without `step` is at its position in the run.
    points = (
        "INSERT INTO metric_series (experiment_id, name, level, bucket, points, step, at, value)"
        f" SELECT experiment_id, name, 0,"
        "  row_number() OVER (PARTITION BY experiment_id, name ORDER BY created_at, id) - 1,"
        "  1, step, created_at, value"
        f" FROM (SELECT m.experiment_id, m.id, m.created_at, e.key AS name, {value} AS value,"
        f"   CASE WHEN {step_is_number} THEN {step} ELSE m.position END AS step"
        "  FROM (SELECT *, row_number() OVER (PARTITION BY experiment_id"
        "         ORDER BY created_at, id) - 1 AS position FROM experiment_metrics) AS m,"
        f"   {each} WHERE {numeric} AND e.key <> 'step') AS points"
    )
    run_heads = (
        "INSERT INTO metric_series_heads (experiment_id, name, points)"
        " SELECT experiment_id, '', count(*) FROM experiment_metrics GROUP BY experiment_id"
    )
    name_heads = (
        "INSERT INTO metric_series_heads (experiment_id, name, points)"
        " SELECT experiment_id, name, count(*) FROM metric_series WHERE level = 0"
        " GROUP BY experiment_id, name"
    )
    return [points, run_heads, name_heads, *(_copy_tier(level) for level in TIER_LEVELS)]


def _copy_tier(level: int) -> str:
    """Per bucket of 2^level points: the lowest and the highest point, the earliest on ties."""
    size = 2**level

    def ranked(order: str) -> str:
        return (
            f"SELECT experiment_id, name, bucket / {size} AS b, step, at, value,"
            f" count(*) OVER w AS n, row_number() OVER (w ORDER BY {order}, bucket) AS r"
            " FROM metric_series WHERE level = 0"
            f" WINDOW w AS (PARTITION BY experiment_id, name, bucket / {size})"
        )

    return (
        "INSERT INTO metric_series (experiment_id, name, level, bucket, points, step, at, value,"
        " high_step, high_at, high_value)"
        f" SELECT lo.experiment_id, lo.name, {level}, lo.b, lo.n, lo.step, lo.at, lo.value,"
        "  hi.step, hi.at, hi.value"
        f" FROM ({ranked('value')}) AS lo JOIN ({ranked('value DESC')}) AS hi"
        "  ON hi.experiment_id = lo.experiment_id AND hi.name = lo.name AND hi.b = lo.b"
        "  AND hi.r = 1"
        " WHERE lo.r = 1"
    )


def downgrade() -> None:
    op.drop_index("ix_metric_series_exp_name_level_step", table_name="metric_series")
    op.drop_table("metric_series")
    op.drop_table("metric_series_heads")

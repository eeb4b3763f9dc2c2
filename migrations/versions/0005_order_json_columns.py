"""JSON columns keep the order the user wrote: Postgres `json` instead of `jsonb`

JSONB re-sorts object keys, so a group's matrix (and with it the sweep), declarations, configs and
every object in answers came back from Postgres in another order than written and than on SQLite
(issue 15). Only `tags` and `experiments.last_metric` stay JSONB: SQL operates on them (`@>`,
`||`, `->>` sort), arrays keep their order, and metric keys carry none. SQLite stores JSON text
already: nothing changes there.

Existing values are converted as they are (`jsonb::json`): a group created before keeps the
order its experiments were made in, so a sweep in progress goes on consistently.

Revision ID: 0005_order_json_columns
Revises: 0004_active_run_index
"""

from alembic import op

revision: str = "0005_order_json_columns"
down_revision: str | None = "0004_active_run_index"
branch_labels = None
depends_on = None

COLUMNS = {
    "projects": ["extra"],
    "experiments": ["config", "declarations", "resources", "run_env", "data_refs"],
    "experiment_metrics": ["values"],
    "experiment_jobs": ["definition", "resources"],
    "experiment_job_statuses": ["details"],
    "experiment_groups": ["spec", "hptuning"],
    "group_decisions": ["experiment_ids", "inputs"],
    "build_jobs": ["config", "resources"],
    "jobs": ["config", "resources", "data_refs"],
    "tensorboard_jobs": ["config", "resources"],
    "notebook_jobs": ["config", "resources"],
    "job_statuses": ["details"],
    "build_job_statuses": ["details"],
    "tensorboard_job_statuses": ["details"],
    "notebook_job_statuses": ["details"],
    "events": ["data"],
}


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        # One ALTER per table: Postgres rewrites the table once for all its columns.
        clauses = ", ".join(
            f'ALTER COLUMN "{c}" TYPE {to} USING "{c}"::{to}' for c in columns
        )
        op.execute(f'ALTER TABLE "{table}" {clauses}')


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")

"""indexes on (last_status, id) of the run tables: the reconciler reads the active rows

Revision ID: 0004_active_run_index
Revises: 0003_group_list_index
"""

from alembic import op

revision: str = "0004_active_run_index"
down_revision: str | None = "0003_group_list_index"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_experiments_status": "experiments",
    "ix_jobs_status": "jobs",
    "ix_build_jobs_status": "build_jobs",
}


def upgrade() -> None:
    for name, table in INDEXES.items():
        op.create_index(name, table, ["last_status", "id"])


def downgrade() -> None:
    for name, table in INDEXES.items():
        op.drop_index(name, table_name=table)

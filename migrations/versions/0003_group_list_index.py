"""indexes for experiment lists: a group's, and a project's filtered by status

Revision ID: 0003_group_list_index
Revises: 0002_events_leases
"""

from alembic import op

revision: str = "0003_group_list_index"
down_revision: str | None = "0002_events_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_experiments_group_updated", "experiments", ["experiment_group_id", "updated_at"]
    )
    op.create_index(
        "ix_experiments_project_status_updated",
        "experiments",
        ["project_id", "last_status", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_experiments_project_status_updated", table_name="experiments")
    op.drop_index("ix_experiments_group_updated", table_name="experiments")

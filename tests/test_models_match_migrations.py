"""The ORM models and the alembic revisions describe the same schema: autogenerate, run against a
database upgraded to head, finds nothing to do (the server never uses create_all)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app.config import Settings
from app.migrate import upgrade
from app.models import Base


def test_models_match_migrations(tmp_path: Path) -> None:
    path = tmp_path / "plx.db"
    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []

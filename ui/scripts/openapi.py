"""Print plx's OpenAPI document (what the server serves at /openapi.json) for type generation."""

import json
import sys
import tempfile

from app.config import Settings
from app.main import create_app

with tempfile.TemporaryDirectory() as data:
    settings = Settings(data_dir=data, database_url=f"sqlite+aiosqlite:///{data}/plx.db")
    json.dump(create_app(settings).openapi(), sys.stdout, indent=1, sort_keys=True)

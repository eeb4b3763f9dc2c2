"""Settings from `PLX_*` environment variables (contract.md section 2), read when asked."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# What `cli_min_version` / `cli_latest_version` accept: dotted release numbers, which compare the
# same way under the CLI's LooseVersion and under `_release`.
_RELEASE_PATTERN = re.compile(r"\d+(\.\d+)*")
# The polyaxon-cli release plx speaks (polyaxon-cli-0.3.9.md).
SPOKEN_CLI_VERSION = "0.3.9"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLX_", env_ignore_empty=True, extra="ignore")

    data_dir: Path = Path("./.plx")
    database_url: str = ""  # derived from data_dir when empty
    admin_username: str | None = None
    admin_password: str | None = None
    runtime: Literal["local", "kubernetes", "fake"] = "local"
    api_url: str | None = None  # derived from host/port by `plx server` when unset
    k8s_namespace: str = "default"
    k8s_registry: str | None = None
    # A PVC holding PLX_DATA_DIR, mounted at the same path in every pod (outputs, tensorboard
    # logdirs). Unset: each pod writes its outputs to an emptyDir.
    k8s_outputs_claim: str | None = None
    k8s_service_account: str | None = None
    k8s_api_host: str | None = None  # an API server URL without credentials (tests, proxies)
    k8s_resync_seconds: float = Field(default=60.0, gt=0)
    # Secrets / config maps of the runs' namespace that `environment.secret_refs` /
    # `configmap_refs` may name (comma-separated); anything else is refused with a 400.
    k8s_allowed_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    k8s_allowed_configmaps: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Signs the plugin proxy's tickets and cookies; unset: a random key in data_dir/secret.key.
    secret_key: str | None = None
    plugin_cookie_seconds: int = Field(default=3600, ge=60)  # lifetime of a plugin's cookie
    local_max_parallel: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_group_experiments: int = Field(default=100_000, ge=1)
    max_upload_bytes: int = Field(default=150 * 1024 * 1024, ge=1)
    max_upload_uncompressed_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    max_upload_files: int = Field(default=100_000, ge=1)
    max_metrics_per_request: int = Field(default=50_000, ge=1)
    reconcile_interval: float = Field(default=5.0, gt=0)  # resync period, seconds
    stop_grace_seconds: float = Field(default=10.0, ge=0)
    heartbeat_timeout: float = Field(default=0, ge=0)  # 0: no zombie sweep
    # Seconds one workload (or group) may keep failing to be observed, started or stopped
    # before its run fails with the reason; it is retried with backoff until then.
    workload_retry_timeout: float = Field(default=300.0, ge=0)
    reconciler_enabled: bool = True
    # Seconds a resolved token is reused without a lookup; another replica may honour a
    # revoked token this long. 0: look every token up.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # Lifetime of a login token in seconds; 0: until logout or a password change.
    token_ttl: float = Field(default=0, ge=0)
    # Local runtime: the OS user runs execute as (created or checked at start). Empty: `plx-run`
    # when the server runs as root; "none" runs them as the server's own user (one trusted user).
    local_run_user: str = ""
    # Allow several non-superusers when local runs cannot be separated from the server.
    local_trust_users: bool = False
    # Requests per minute per user (per run for a run's token, per client address when
    # anonymous); 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    # Largest request body outside the code uploads (which have `max_upload_bytes`): a few MiB
    # hold the largest metric batch (`max_metrics_per_request` rows of ~100 bytes).
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # Failed logins per minute per username and per client address (429 above); 0: no limit.
    login_failures_per_minute: int = Field(default=10, ge=0)
    # WebSocket handshakes per minute per user (per client address when anonymous); 0: no limit.
    ws_handshakes_per_minute: int = Field(default=60, ge=0)
    # Live streams (WebSockets) one user may hold open at once; 0: no cap.
    max_streams_per_user: int = Field(default=10, ge=0)
    # Password hashes (argon2, ~100 ms of CPU each) computed at once, off the event loop;
    # further logins queue for a worker.
    password_hash_workers: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1
    )
    # Seconds a run's token keeps working after the run is done, for posts still in flight
    # (contract.md 3: revoked at most 30 s after the run is done).
    run_token_grace_seconds: float = Field(default=10.0, ge=0, le=30)
    # Storage bounds. Log appends (POST .../logs): bytes per request and per run's log; bytes of
    # logs per project owner (0: no quota). Code versions per owner: count and bytes (extracted
    # size; 0: no quota); versions kept per project (0: all; a version a run uses is kept).
    max_log_append_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    max_log_bytes_per_run: int = Field(default=256 * 1024 * 1024, ge=1)
    user_log_quota_bytes: int = Field(default=0, ge=0)
    user_code_quota_versions: int = Field(default=0, ge=0)
    user_code_quota_bytes: int = Field(default=0, ge=0)
    code_versions_keep: int = Field(default=0, ge=0)
    # Visibility of a project whose create body does not say `is_public` (v0: public).
    default_project_visibility: Literal["public", "private"] = "public"
    # /metrics: when set, scrapes must send `Authorization: Bearer <it>`; its database gauges
    # are reused for this many seconds (a scrape storm costs one query per period).
    metrics_token: SecretStr | None = None
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    # The polyaxon-cli versions `GET /versions/cli/` announces (polyaxon-cli-0.3.9.md): a CLI older
    # than the minimum tells its user to upgrade and stops; one older than the latest prints a hint.
    cli_min_version: str = "0.3.0"
    cli_latest_version: str = ""  # when empty: the newer of SPOKEN_CLI_VERSION and the minimum

    @field_validator("k8s_allowed_secrets", "k8s_allowed_configmaps", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("cli_min_version", "cli_latest_version")
    @classmethod
    def _check_release(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value and not _RELEASE_PATTERN.fullmatch(value):
            variable = f"PLX_{(info.field_name or '').upper()}"
            raise ValueError(f"{variable} must be a version like 0.3.9, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_cli_versions(self) -> Settings:
        if not self.cli_latest_version:
            self.cli_latest_version = max(SPOKEN_CLI_VERSION, self.cli_min_version, key=_release)
        # A minimum above the latest would tell every CLI to upgrade to a version it cannot use.
        if _release(self.cli_min_version) > _release(self.cli_latest_version):
            raise ValueError(
                f"PLX_CLI_MIN_VERSION ({self.cli_min_version}) is newer than "
                f"PLX_CLI_LATEST_VERSION ({self.cli_latest_version})"
            )
        return self

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            db_path = (self.data_dir / "plx.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{db_path}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

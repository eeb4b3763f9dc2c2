"""A PyTorch Lightning logger: `Trainer(logger=PlxLogger())` reports to plx.

Inside a plx run it reports to that run; otherwise pass `project=` (a tracking-only
experiment is created) or an existing `run=`.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the standalone `pytorch-lightning` distribution
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
    from pytorch_lightning.utilities import rank_zero_only

from plx_client import tracking


class PlxLogger(Logger):
    def __init__(
        self,
        project: str | None = None,
        *,
        run: tracking.Run | None = None,
        name: str | None = None,
        **init_options: Any,
    ) -> None:
        super().__init__()
        self._project = project
        self._run = run
        self._name = name
        self._init_options = init_options

    @property
    @rank_zero_experiment
    def experiment(self) -> tracking.Run:
        if self._run is None:
            self._run = tracking.current() or tracking.init(
                self._project, name=self._name, **self._init_options
            )
        return self._run

    @property
    def name(self) -> str:
        return self._name or (self._project or "plx")

    @property
    def version(self) -> int | str:
        return self.experiment.experiment_id if self._run is not None else ""

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params or {})
        flat = {k: v for k, v in _flatten(values).items() if _plain(v)}
        if flat:
            self.experiment.log_params(**flat)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.experiment.log_metrics(step, **metrics)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Flush; Lightning calls this after each fit/validate/test, so a tracking-only
        experiment is finished by `tracking.finish()` or at exit, or here when it failed."""
        if self._run is None:
            return
        if status == "failed" and not self._run.managed:
            self._run.finish("failed")
        else:
            self._run.flush()


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | tuple)

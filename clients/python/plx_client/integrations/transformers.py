"""A Hugging Face `transformers` callback: `Trainer(callbacks=[PlxCallback()])` reports the
Trainer's logs (loss, learning rate, eval metrics) with `step=global_step` to plx."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from plx_client import tracking

# TrainingArguments worth keeping as the experiment's params.
PARAMS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "seed",
)


class PlxCallback(TrainerCallback):
    def __init__(
        self, project: str | None = None, *, run: tracking.Run | None = None, **init_options: Any
    ) -> None:
        self._project = project
        self._run = run
        self._init_options = init_options

    def _get_run(self) -> tracking.Run:
        if self._run is None:
            self._run = tracking.current() or tracking.init(self._project, **self._init_options)
        return self._run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        params = {k: getattr(args, k) for k in PARAMS if hasattr(args, k)}
        params = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in params.items()
        }
        model = kwargs.get("model")
        if model is not None:
            params["model"] = type(model).__name__
        self._get_run().log_params(**params)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = {
            k: v for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if values:
            self._get_run().log_metrics(state.global_step, **values)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self._run is not None:
            self._run.flush()

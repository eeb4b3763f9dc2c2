"""Early stopping: v0 thresholds (stop pending experiments) and plx policies (stop running ones).

Decisions are frozen values carrying their inputs and a sentence for users, so the service can
store them in a status message and show why an experiment was stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from app.logic.hptuning import EarlyStoppingPolicy, EarlyStoppingRule


@dataclass(frozen=True)
class ThresholdDecision:
    """v0 `should_stop_early`: a last metric crossed a threshold, so pending experiments stop."""

    experiment: int
    metric: str
    value: float
    threshold: float
    optimization: Literal["maximize", "minimize"]
    action: Literal["stop_pending"] = "stop_pending"

    @property
    def reason(self) -> str:
        op = ">=" if self.optimization == "maximize" else "<="
        return (
            f"Early stopping: experiment {self.experiment} reached {self.metric} "
            f"{self.value:g} {op} {self.threshold:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def check_thresholds(
    rules: Sequence[EarlyStoppingRule] | None, last_metrics: Mapping[int, Mapping[str, Any]]
) -> ThresholdDecision | None:
    """The first crossing (rules in order, experiments by id), or None. OR across rules, as v0."""
    for rule in rules or ():
        for experiment in sorted(last_metrics):
            value = _number(last_metrics[experiment].get(rule.metric))
            if value is None:
                continue
            crossed = (
                value >= rule.value if rule.optimization == "maximize" else value <= rule.value
            )
            if crossed:
                return ThresholdDecision(
                    experiment, rule.metric, value, rule.value, rule.optimization
                )
    return None


@dataclass(frozen=True)
class MetricHistory:
    """One experiment's reported values of the policy metric, as (step, value) pairs."""

    experiment: int
    points: Sequence[tuple[int, float]]
    is_running: bool

    def last_step(self) -> int | None:
        return max((step for step, _ in self.points), default=None)

    def value_at(self, step: int) -> float | None:
        """The latest value reported at or before `step` (reports need not share steps)."""
        best: tuple[int, float] | None = None
        for point_step, value in self.points:
            if point_step <= step and (best is None or point_step >= best[0]):
                best = (point_step, value)
        return None if best is None else _number(best[1])


@dataclass(frozen=True)
class StopDecision:
    """A policy's verdict that a running experiment should stop."""

    experiment: int
    rule: Literal["median", "truncation"]
    metric: str
    step: int
    value: float
    reference: float  # the median, or the truncation cutoff value
    n_trials: int  # experiments compared at this step
    optimization: Literal["maximize", "minimize"]
    percent: float | None = None
    action: Literal["stop_running"] = "stop_running"

    @property
    def reason(self) -> str:
        head = (
            f"experiment {self.experiment} stopped: "
            f"{self.metric} {self.value:g} at step {self.step}"
        )
        if self.rule == "median":
            return f"{head} worse than median {self.reference:g} of {self.n_trials} trials"
        return (
            f"{head} in the worst {self.percent:g}% of {self.n_trials} trials "
            f"(cutoff {self.reference:g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


def evaluate_policy(
    policy: EarlyStoppingPolicy, histories: Sequence[MetricHistory]
) -> tuple[StopDecision, ...]:
    """Running experiments the policy stops now, each judged at its latest evaluation step."""
    decisions = []
    for history in sorted(histories, key=lambda h: h.experiment):
        if not history.is_running:
            continue
        decision = _judge(policy, history, histories)
        if decision is not None:
            decisions.append(decision)
    return tuple(decisions)


def _evaluation_step(policy: EarlyStoppingPolicy, history: MetricHistory) -> int | None:
    last = history.last_step()
    if last is None:
        return None
    step = last // policy.evaluation_interval * policy.evaluation_interval
    return step if step >= policy.min_step else None


def _judge(
    policy: EarlyStoppingPolicy, history: MetricHistory, everyone: Sequence[MetricHistory]
) -> StopDecision | None:
    step = _evaluation_step(policy, history)
    value = None if step is None else history.value_at(step)
    if step is None or value is None:
        return None
    peers = _peer_values(history, everyone, step)
    if len(peers) < policy.min_trials:
        return None
    standing = _Standing(history.experiment, step, value, peers)
    if policy.kind == "median":
        return _median_rule(policy, standing)
    return _truncation_rule(policy, standing)


@dataclass(frozen=True)
class _Standing:
    """An experiment's value at the evaluated step, and its peers' (experiment, value) there."""

    experiment: int
    step: int
    value: float
    peers: list[tuple[int, float]]


def _peer_values(
    history: MetricHistory, everyone: Sequence[MetricHistory], step: int
) -> list[tuple[int, float]]:
    """Other experiments that got as far as `step`, with their value there."""
    peers = []
    for other in everyone:
        last = other.last_step()
        if other.experiment == history.experiment or last is None or last < step:
            continue
        value = other.value_at(step)
        if value is not None:
            peers.append((other.experiment, value))
    return peers


def _median_rule(policy: EarlyStoppingPolicy, standing: _Standing) -> StopDecision | None:
    value = standing.value
    median = float(np.median([v for _, v in standing.peers]))
    worse = value < median if policy.optimization == "maximize" else value > median
    if not worse:
        return None
    return StopDecision(
        standing.experiment,
        "median",
        policy.metric,
        standing.step,
        value,
        median,
        len(standing.peers),
        policy.optimization,
    )


def _truncation_rule(policy: EarlyStoppingPolicy, standing: _Standing) -> StopDecision | None:
    experiment, step, value = standing.experiment, standing.step, standing.value
    group = [*standing.peers, (experiment, value)]
    sign = 1.0 if policy.optimization == "maximize" else -1.0
    # Worst first; on a tie the later experiment counts as worse, so earlier work is kept.
    group.sort(key=lambda item: (sign * item[1], -item[0]))
    n_cut = math.floor(len(group) * policy.percent / 100)
    if n_cut == 0:
        return None
    worst = [exp for exp, _ in group[:n_cut]]
    if experiment not in worst:
        return None
    cutoff = group[n_cut - 1][1]
    return StopDecision(
        experiment,
        "truncation",
        policy.metric,
        step,
        value,
        cutoff,
        len(group),
        policy.optimization,
        percent=policy.percent,
    )

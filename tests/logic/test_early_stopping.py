import pytest

from app.logic.early_stopping import (
    MetricHistory,
    StopDecision,
    check_thresholds,
    evaluate_policy,
)
from app.logic.hptuning import EarlyStoppingPolicy, EarlyStoppingRule


def rule(metric, value, optimization="maximize"):
    return EarlyStoppingRule(metric=metric, value=value, optimization=optimization)


def test_threshold_maximize_is_greater_or_equal():
    decision = check_thresholds([rule("acc", 0.9)], {3: {"acc": 0.9}, 1: {"acc": 0.5}})
    assert decision is not None
    assert (decision.experiment, decision.value, decision.action) == (3, 0.9, "stop_pending")
    assert decision.reason == "Early stopping: experiment 3 reached acc 0.9 >= 0.9"
    assert decision.to_dict()["reason"] == decision.reason


def test_threshold_minimize_is_less_or_equal_and_rules_are_ored():
    rules = [rule("acc", 0.99), rule("loss", 0.1, "minimize")]
    decision = check_thresholds(rules, {1: {"acc": 0.5, "loss": 0.2}, 2: {"loss": 0.05}})
    assert decision is not None and decision.metric == "loss" and decision.experiment == 2
    assert "0.05 <= 0.1" in decision.reason


def test_threshold_not_reached_missing_or_non_numeric_metrics():
    rules = [rule("acc", 0.9)]
    assert check_thresholds(rules, {1: {"acc": 0.89}, 2: {}, 3: {"acc": "high"}}) is None
    assert check_thresholds(None, {1: {"acc": 1.0}}) is None
    assert check_thresholds(rules, {1: {"acc": float("nan")}}) is None


def policy(kind="median", **kw):
    return EarlyStoppingPolicy(kind=kind, metric="loss", optimization="minimize", **kw)


def history(experiment, values, running=False, start=1):
    points = [(start + i, v) for i, v in enumerate(values)]
    return MetricHistory(experiment, points, running)


def test_median_stops_a_running_trial_worse_than_the_median_at_its_step():
    others = [history(i, [1.0, 0.8, 0.6, 0.4, 0.4]) for i in range(1, 7)]
    laggard = history(17, [1.2, 1.1, 1.0, 0.95, 0.9], running=True)
    decisions = evaluate_policy(policy(), [*others, laggard])
    assert decisions == (StopDecision(17, "median", "loss", 5, 0.9, 0.4, 6, "minimize"),)
    assert decisions[0].reason == (
        "experiment 17 stopped: loss 0.9 at step 5 worse than median 0.4 of 6 trials"
    )


def test_median_keeps_good_trials_finished_trials_and_waits_for_enough_peers():
    others = [history(i, [1.0, 0.5]) for i in range(1, 4)]
    good = history(10, [0.9, 0.3], running=True)
    assert evaluate_policy(policy(), [*others, good]) == ()
    bad_but_done = history(11, [2.0, 2.0], running=False)
    assert evaluate_policy(policy(), [*others, bad_but_done]) == ()
    bad = history(12, [2.0, 2.0], running=True)
    assert evaluate_policy(policy(min_trials=4), [*others, bad]) == ()
    assert len(evaluate_policy(policy(min_trials=3), [*others, bad])) == 1


def test_min_step_and_interval_delay_judgement():
    others = [history(i, [1.0, 0.5, 0.4, 0.3]) for i in range(1, 5)]
    bad = history(9, [2.0, 2.0, 2.0], running=True)
    assert evaluate_policy(policy(min_step=4), [*others, bad]) == ()
    decisions = evaluate_policy(policy(evaluation_interval=2), [*others, bad])
    assert decisions[0].step == 2  # latest step 3 aligned down to the interval


def test_peers_must_have_reached_the_step():
    short = [history(i, [0.1]) for i in range(1, 5)]  # only step 1
    bad = history(9, [2.0, 2.0, 2.0], running=True)
    assert evaluate_policy(policy(), [*short, bad]) == ()


def test_value_at_uses_the_latest_report_at_or_before_the_step():
    h = MetricHistory(1, [(1, 5.0), (4, 3.0), (2, 4.0)], True)
    assert (h.value_at(3), h.value_at(4), h.value_at(0)) == (4.0, 3.0, None)


def test_truncation_stops_the_worst_percent():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    finished = [history(i, [v]) for i, v in enumerate(values, start=1)]
    worst = history(20, [0.9], running=True)
    middle = history(21, [0.35], running=True)
    decisions = evaluate_policy(policy("truncation", percent=25), [*finished, worst, middle])
    assert [d.experiment for d in decisions] == [20]
    # 25 % of 8 cuts the two worst (0.9, 0.6): the cutoff is the better of them
    assert decisions[0].n_trials == 8 and decisions[0].reference == 0.6
    assert decisions[0].reason == (
        "experiment 20 stopped: loss 0.9 at step 1 in the worst 25% of 8 trials (cutoff 0.6)"
    )
    assert decisions[0].to_dict()["action"] == "stop_running"


def test_truncation_maximize_and_too_few_to_cut():
    maximize = EarlyStoppingPolicy(kind="truncation", metric="acc", percent=50, min_trials=1)
    trials = [history(1, [0.9]), history(2, [0.1], running=True)]
    assert [d.experiment for d in evaluate_policy(maximize, trials)] == [2]
    tiny = EarlyStoppingPolicy(kind="truncation", metric="acc", percent=10, min_trials=1)
    assert evaluate_policy(tiny, trials) == ()


@pytest.mark.parametrize("kind", ["median", "truncation"])
def test_running_trial_without_reports_is_left_alone(kind):
    trials = [history(i, [1.0]) for i in range(1, 5)] + [MetricHistory(9, [], True)]
    assert evaluate_policy(policy(kind), trials) == ()

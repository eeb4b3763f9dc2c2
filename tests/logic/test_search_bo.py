import numpy as np
import pytest

from app.logic.hptuning import UtilityFunctionConfig, parse_hptuning
from app.logic.search import BayesianOptimization, Trial, suggest
from app.logic.search.base import params_key
from app.logic.search.bo import Space, acquisition


def bo_config(matrix, n_initial=4, n_iterations=6, utility=None, optimization="maximize"):
    bo = {
        "n_initial_trials": n_initial,
        "n_iterations": n_iterations,
        "metric": {"name": "score", "optimization": optimization},
    }
    if utility is not None:
        bo["utility_function"] = utility
    return parse_hptuning({"matrix": matrix, "bo": bo})


MIXED = {"lr": {"uniform": "0:1"}, "layers": {"range": "1:6:1"}, "act": {"values": ["a", "b"]}}


def objective(params):
    return -((params["lr"] - 0.3) ** 2) - 0.1 * params["layers"] + (params["act"] == "b")


def run(config, seed=11, fn=objective):
    history: list[Trial] = []
    for _ in range(50):
        result = suggest(config, seed=seed, history=history)
        assert suggest(config, seed=seed, history=history) == result
        history += [
            Trial(s.index, s.params, "created", None, s.iteration) for s in result.suggestions
        ]
        history = [
            Trial(t.index, t.params, "succeeded", fn(t.params), t.iteration) for t in history
        ]
        if result.finished:
            return history
    raise AssertionError("bo did not finish")


@pytest.mark.parametrize(
    "utility",
    [
        None,
        {"acquisition_function": "ei", "eps": 0.0, "gaussian_process": {"kernel": "rbf"}},
        {"acquisition_function": "poi", "eps": 0.01, "gaussian_process": {"nu": 2.5}},
        {"acquisition_function": "ucb", "kappa": 0.5, "n_warmup": 50, "n_iter": 2},
    ],
)
def test_initial_trials_then_one_suggestion_per_iteration(utility):
    config = bo_config(MIXED, utility=utility)
    history = run(config)
    assert len(history) == 4 + 6
    assert [t.iteration for t in history] == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert [t.index for t in history] == list(range(10))
    keys = {params_key(t.params, tuple(MIXED)) for t in history}
    assert len(keys) == 10  # never repeats an observed point
    assert all(0 <= t.params["lr"] <= 1 and t.params["layers"] in range(1, 6) for t in history)


def test_the_gp_finds_better_points_than_the_random_start():
    config = bo_config(MIXED, n_initial=5, n_iterations=10)
    history = run(config)
    initial = max(t.metric for t in history if t.iteration == 0)
    assert max(t.metric for t in history if t.iteration > 0) > initial


def test_minimize_negates_the_metric():
    config = bo_config(
        {"x": {"range": "0:50:1"}}, n_initial=3, n_iterations=6, optimization="minimize"
    )
    history = run(config, fn=lambda p: abs(p["x"] - 20))
    assert min(t.metric for t in history if t.iteration > 0) <= min(
        t.metric for t in history if t.iteration == 0
    )


def test_waits_until_every_trial_is_done():
    config = bo_config(MIXED)
    first = suggest(config, seed=1, history=[]).suggestions
    history = [Trial(s.index, s.params, "running", None, 0) for s in first]
    result = suggest(config, seed=1, history=history)
    assert result.waiting and result.suggestions == () and result.iteration == 0


def test_failed_trials_without_metrics_still_get_a_new_point():
    config = bo_config(MIXED)
    first = suggest(config, seed=1, history=[]).suggestions
    history = [Trial(s.index, s.params, "failed", None, 0) for s in first]
    result = suggest(config, seed=1, history=history)
    assert len(result.suggestions) == 1 and result.iteration == 1
    assert params_key(result.suggestions[0].params, tuple(MIXED)) not in {
        params_key(t.params, tuple(MIXED)) for t in history
    }


def test_exhausted_discrete_space_finishes_early():
    config = bo_config({"x": {"values": [1, 2, 3]}, "y": {"values": ["p", "q"]}}, 2, 10)
    history = run(config, fn=lambda p: p["x"])
    assert len(history) == 6


def test_same_seed_and_history_same_proposal():
    config = bo_config(MIXED)
    engine = BayesianOptimization(config.matrix, config.bo, 3)
    history = run(config, seed=3)[:6]
    assert engine.propose(history, 3) == engine.propose(history, 3)


def test_space_encodes_categorical_one_hot_and_numbers_min_max():
    config = bo_config(MIXED)
    space = Space(config.matrix)
    encoded = space.encode([{"lr": 0.25, "layers": 5, "act": "b"}])
    assert encoded.tolist() == [[0.25, 1.0, 0.0, 1.0]]


def test_acquisition_functions():
    mu, sigma = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    ucb = acquisition(UtilityFunctionConfig(kappa=2.0), mu, sigma, 0.5)
    assert ucb.tolist() == pytest.approx([2.0, 1.0])
    ei = acquisition(UtilityFunctionConfig(acquisition_function="ei", eps=0.0), mu, sigma, 0.5)
    assert ei[1] == pytest.approx(0.5) and ei[0] > 0
    poi = acquisition(UtilityFunctionConfig(acquisition_function="poi", eps=0.0), mu, sigma, 0.5)
    assert poi.tolist() == pytest.approx([0.3085, 1.0], abs=1e-4)

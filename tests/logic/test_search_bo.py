import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from app.logic.hptuning import UtilityFunctionConfig, parse_hptuning
from app.logic.search import BayesianOptimization, Trial, bo, suggest
from app.logic.search.base import params_key
from app.logic.search.bo import Space, acquisition, fit_gp


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


QUADRATIC = {"x": {"uniform": "0:1"}, "y": {"uniform": "0:1"}}


def quadratic(params):
    return -((params["x"] - 0.3) ** 2 + (params["y"] - 0.7) ** 2)


@pytest.mark.parametrize(
    "utility", [None, {"acquisition_function": "ei", "eps": 0.0}], ids=["ucb", "ei"]
)
def test_bo_gets_close_to_the_optimum_of_a_quadratic_and_beats_random(utility):
    seeds = range(8)
    config = bo_config(QUADRATIC, n_initial=5, n_iterations=15, utility=utility)
    bo_regrets = [-max(t.metric for t in run(config, seed=s, fn=quadratic)) for s in seeds]
    budget = parse_hptuning({"matrix": QUADRATIC, "random_search": {"n_experiments": 20}})
    random_regrets = [
        -max(quadratic(s.params) for s in suggest(budget, seed=seed, history=[]).suggestions)
        for seed in seeds
    ]
    assert max(bo_regrets) < 0.01  # every run ends within 0.1 of (0.3, 0.7)
    assert np.mean(bo_regrets) < np.mean(random_regrets) / 3


def noisy_history(config, n, seed=5):
    rng = np.random.default_rng(seed)
    first = suggest(config, seed=seed, history=[]).suggestions[:n]
    return [
        Trial(s.index, s.params, "succeeded", objective(s.params) + 0.01 * rng.normal(), 0)
        for s in first
    ]


def test_many_observations_tune_on_a_subset_and_condition_on_all():
    config = bo_config(MIXED, n_initial=300, n_iterations=2)
    space = Space(config.matrix)
    history = noisy_history(config, 300)
    x = space.encode([t.params for t in history])
    y = np.array([t.metric for t in history])
    utility = config.bo.utility_function
    gp = fit_gp(x, y, utility, seed=1)
    assert gp.X_train_.shape == (300, space.width)
    subset = np.linspace(0, 299, 128).round().astype(int)
    tuned = fit_gp(x[subset], y[subset], utility, seed=1)
    assert gp.kernel_.get_params() == tuned.kernel_.get_params()
    # conditioned on every observation, not only the subset: the posterior mean reproduces them
    assert np.abs(gp.predict(x) - y).max() < 1e-3 < np.abs(tuned.predict(x) - y).max()


def test_a_suggestion_over_many_observations_is_new_and_reproducible():
    config = bo_config(MIXED, n_initial=300, n_iterations=2)
    history = noisy_history(config, 300)
    engine = BayesianOptimization(config.matrix, config.bo, 5)
    proposal = engine.propose(history, 1)
    assert proposal == BayesianOptimization(config.matrix, config.bo, 5).propose(history, 1)
    assert params_key(proposal, tuple(MIXED)) not in {
        params_key(t.params, tuple(MIXED)) for t in history
    }


def blas_threads():
    return [lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info()]


def test_the_gp_runs_blas_on_one_thread_and_restores_the_count(monkeypatch):
    config = bo_config(MIXED)
    engine = BayesianOptimization(config.matrix, config.bo, 3)
    history = run(config, seed=3)[:6]
    during = []

    def recording_fit(*args, **kwargs):
        during.append(blas_threads())
        return fit_gp(*args, **kwargs)

    monkeypatch.setattr(bo, "fit_gp", recording_fit)
    before = blas_threads()
    engine.propose(history, 3)
    assert during == [[1] * len(before)] and blas_threads() == before


def test_space_encodes_unknown_values_as_zeros_and_list_values_by_identity():
    space = Space(bo_config({"c": {"values": [[1, 2], "z"]}, "x": {"uniform": "0:2"}}).matrix)
    encoded = space.encode([{"c": [1, 2], "x": 1.0}, {"c": "other", "x": 2}, {"c": "z"}])
    assert encoded.tolist() == [[1.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]

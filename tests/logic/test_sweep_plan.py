from app.logic.hptuning import parse_hptuning
from app.logic.sweep_plan import plan_sweep, planned_experiments

SEED_MATRIX = {
    "learning_rate": {"linspace": "0.001:0.1:5"},
    "dropout": {"values": [0.25, 0.3]},
    "activation": {"values": ["relu", "sigmoid"]},
}


def plan(raw):
    return plan_sweep(parse_hptuning(raw))


def test_grid_plan_and_oversized_n_experiments():
    assert plan({"matrix": SEED_MATRIX}).to_dict() == {
        "algorithm": "grid",
        "space_size": 20,
        "total_experiments": 20,
        "iterations": [20],
        "warnings": [],
    }
    oversized = plan({"matrix": SEED_MATRIX, "grid_search": {"n_experiments": 50}})
    assert oversized.total_experiments == 20
    assert oversized.warnings == (
        "grid_search.n_experiments (50) is larger than the space (20 points): "
        "20 experiments will be created",
    )
    assert plan({"matrix": SEED_MATRIX, "grid_search": {"n_experiments": 7}}).iterations == (7,)


def test_random_plan_for_the_seed_group():
    seed = plan({"matrix": SEED_MATRIX, "concurrency": 5, "random_search": {"n_experiments": 10}})
    assert (seed.space_size, seed.total_experiments, seed.warnings) == (20, 10, ())


def test_continuous_space_is_unbounded_and_quantised_spaces_warn():
    unbounded = plan({"matrix": {"lr": {"uniform": "0:1"}}, "random_search": {"n_experiments": 99}})
    assert unbounded.space_size is None and unbounded.total_experiments == 99
    assert unbounded.warnings == ()
    few = plan({"matrix": {"lr": {"quniform": "0:1:0.25"}}, "random_search": {"n_experiments": 9}})
    assert few.warnings == (
        "random_search.n_experiments (9) is larger than the at most 5 distinct points of the "
        "quantised space: the search may end with fewer experiments",
    )


def test_hyperband_plan_counts_every_rung():
    raw = {
        "matrix": {"lr": {"uniform": "0:1"}},
        "hyperband": {
            "max_iter": 81,
            "eta": 3,
            "resource": {"name": "epochs", "type": "int"},
            "metric": {"name": "acc"},
        },
    }
    hb = plan(raw)
    assert hb.iterations == (81, 27, 9, 3, 1, 34, 11, 3, 1, 15, 5, 1, 8, 2, 5)
    assert hb.total_experiments == 206 == planned_experiments(parse_hptuning(raw))
    capped = plan({**raw, "matrix": {"x": {"values": [1, 2, 3]}}})
    assert capped.iterations[0] == 3
    assert "fewer than the 81 configs" in capped.warnings[0]


def test_bo_plan_and_its_warnings():
    bo = {"n_initial_trials": 5, "n_iterations": 10, "metric": {"name": "loss"}}
    wide = plan({"matrix": {"lr": {"uniform": "0:1"}}, "bo": bo, "concurrency": 3})
    assert wide.iterations == (5,) + (1,) * 10 and wide.total_experiments == 15
    assert wide.warnings == (
        "concurrency only applies to the initial trials: bo suggests one at a time",
    )
    narrow = plan({"matrix": {"x": {"values": [1, 2, 3, 4, 5, 6, 7]}}, "bo": bo})
    assert narrow.iterations == (5, 1, 1) and narrow.total_experiments == 7
    assert "bo plans 15 experiments but the space has 7 points" in narrow.warnings[0]


def test_concurrency_larger_than_the_sweep():
    small = plan({"matrix": {"x": {"values": [1, 2]}}, "concurrency": 4})
    assert small.warnings == ("concurrency 4 is larger than the 2 experiments planned",)

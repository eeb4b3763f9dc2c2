import pytest
from pydantic import ValidationError

from app.logic.errors import SpecError
from app.logic.hptuning import HPTuningConfig, parse_hptuning, spec_error_from_validation

SEED_GROUP = {
    "concurrency": 5,
    "random_search": {"n_experiments": 10},
    "matrix": {
        "learning_rate": {"linspace": "0.001:0.1:5"},
        "dropout": {"values": [0.25, 0.3]},
        "activation": {"values": ["relu", "sigmoid"]},
    },
}
MATRIX = {"lr": {"values": [0.1, 0.2]}}
HYPERBAND = {
    "max_iter": 81,
    "eta": 3,
    "resource": {"name": "epochs", "type": "int"},
    "metric": {"name": "loss", "optimization": "minimize"},
}
BO = {
    "n_initial_trials": 3,
    "n_iterations": 5,
    "metric": {"name": "loss"},
    "utility_function": {"acquisition_function": "ucb", "kappa": 1.2},
}


def test_seed_group_is_stored_as_the_api_shows_it():
    config = parse_hptuning(SEED_GROUP)
    assert config.search_algorithm == "random"
    assert config.to_dict() == {
        "early_stopping": None,
        "concurrency": 5,
        "seed": None,
        "matrix": {
            "dropout": {"values": [0.25, 0.3]},
            "activation": {"values": ["relu", "sigmoid"]},
            "learning_rate": {"linspace": {"num": 5, "stop": 0.1, "start": 0.001}},
        },
        "random_search": {"n_experiments": 10},
    }
    assert parse_hptuning(config.to_dict()) == config  # the stored form round-trips


def test_defaults_no_algorithm_means_grid_stored_as_empty_grid_search():
    config = parse_hptuning({"matrix": MATRIX, "concurrency": None})
    assert config.concurrency == 1
    assert config.search_algorithm == "grid"
    assert config.to_dict()["grid_search"] == {}
    assert config.objective is None


def test_seed_zero_counts_as_no_seed_like_v0():
    assert parse_hptuning({"matrix": MATRIX, "seed": 0}).fixed_seed is None
    assert parse_hptuning({"matrix": MATRIX, "seed": 12}).fixed_seed == 12


def test_enums_accept_any_case():
    config = parse_hptuning(
        {
            "matrix": {"lr": {"uniform": "0:1"}},
            "bo": {
                **BO,
                "metric": {"name": "loss", "optimization": "MINIMIZE"},
                "utility_function": {
                    "acquisition_function": "Ei",
                    "eps": 0.1,
                    "gaussian_process": {"kernel": "RBF"},
                },
            },
        }
    )
    assert config.bo is not None
    assert config.bo.metric.optimization == "minimize"
    assert config.bo.utility_function.acquisition_function == "ei"
    assert config.bo.utility_function.gaussian_process.kernel == "rbf"
    assert config.objective == config.bo.metric


def test_hyperband_defaults_and_stored_form():
    config = parse_hptuning(
        {
            "matrix": MATRIX,
            "hyperband": {**HYPERBAND, "resource": {"name": "epochs", "type": "INT"}},
        }
    )
    assert config.search_algorithm == "hyperband"
    assert config.to_dict()["hyperband"] == {
        "max_iter": 81,
        "eta": 3.0,
        "resource": {"name": "epochs", "type": "int"},
        "metric": {"name": "loss", "optimization": "minimize"},
        "resume": False,
    }


def test_bo_without_utility_function_uses_ucb_with_a_default_kappa():
    config = parse_hptuning({"matrix": MATRIX, "bo": {**BO, "utility_function": None}})
    assert config.bo is not None
    assert config.bo.utility_function.acquisition_function == "ucb"
    assert config.bo.utility_function.kappa == 2.576


def test_early_stopping_rules_and_policy():
    config = parse_hptuning(
        {
            "matrix": MATRIX,
            "early_stopping": [{"metric": "acc", "value": 0.9, "policy": "all"}],
            "early_stopping_policy": {
                "kind": "Median",
                "metric": "loss",
                "optimization": "minimize",
                "min_trials": 4,
            },
        }
    )
    stored = config.to_dict()
    assert stored["early_stopping"] == [
        {"metric": "acc", "value": 0.9, "optimization": "maximize", "policy": "all"}
    ]
    assert stored["early_stopping_policy"]["kind"] == "median"
    assert stored["early_stopping_policy"]["min_trials"] == 4


def error(raw) -> str:
    with pytest.raises(SpecError) as info:
        parse_hptuning(raw)
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"concurrency": 2}, "hptuning.matrix: A matrix definition is required"),
        ({"matrix": {}}, "hptuning.matrix: A matrix definition is required"),
        ({"matrix": {" ": {"values": [1]}}}, "hptuning.matrix: parameter names must not be blank"),
        ({"matrix": MATRIX, "concurrency": 0}, "hptuning.concurrency: Input should be greater"),
        ({"matrix": MATRIX, "seed": -1}, "hptuning.seed: Input should be greater than or equal"),
        ({"matrix": MATRIX, "colour": 1}, "hptuning.colour: unknown field"),
        (
            {"matrix": MATRIX, "grid_search": {}, "bo": BO},
            "hptuning: Only one search algorithm can be used, got grid_search, bo.",
        ),
        (
            {"matrix": MATRIX, "random_search": {}},
            "hptuning.random_search.n_experiments: this field is required",
        ),
        (
            {"matrix": MATRIX, "grid_search": {"n_experiments": 0}},
            "hptuning.grid_search.n_experiments: Input should be greater than or equal to 1",
        ),
        (
            {"matrix": {"lr": {"pvalues": [[1, 0.5], [2, 0.5]]}}},
            "hptuning.matrix.lr.pvalues: `lr` defines a distribution, "
            "and it cannot be used with grid search.",
        ),
        (
            {"matrix": {"lr": {"normal": "0:1"}}, "bo": BO},
            "hptuning.matrix.lr.normal: `lr` defines a distribution other than uniform, "
            "and it cannot be used with bayesian optimization.",
        ),
        (
            {"matrix": {"lr": {"uniform": "0:1:2"}}, "bo": BO},
            "hptuning.matrix.lr.uniform.size: size cannot be used with bo",
        ),
        (
            {"matrix": MATRIX, "bo": {**BO, "utility_function": {"acquisition_function": "ucb"}}},
            "hptuning.bo.utility_function.kappa: the acquisition function `ucb` requires a "
            "parameter `kappa`",
        ),
        (
            {"matrix": MATRIX, "bo": {**BO, "utility_function": {"acquisition_function": "poi"}}},
            "hptuning.bo.utility_function.eps: the acquisition function `poi` requires",
        ),
        (
            {"matrix": MATRIX, "bo": {**BO, "utility_function": {"acquisition_function": "x"}}},
            "hptuning.bo.utility_function.acquisition_function: Input should be 'ucb', 'ei'",
        ),
        (
            {"matrix": MATRIX, "hyperband": {**HYPERBAND, "eta": 1}},
            "hptuning.hyperband.eta: Input should be greater than 1",
        ),
        (
            {"matrix": MATRIX, "hyperband": {**HYPERBAND, "resource": {"name": "lr"}}},
            "hptuning.hyperband.resource.name: `lr` is set by hyperband and cannot also be",
        ),
        (
            {"matrix": MATRIX, "hyperband": {**HYPERBAND, "resource": {"name": "e", "type": "x"}}},
            "hptuning.hyperband.resource.type: Input should be 'int' or 'float'",
        ),
        (
            {"matrix": MATRIX, "early_stopping": [{"metric": "acc"}]},
            "hptuning.early_stopping.0.value: this field is required",
        ),
        (
            {
                "matrix": MATRIX,
                "early_stopping_policy": {"kind": "median", "metric": "m", "percent": 0},
            },
            "hptuning.early_stopping_policy.percent: Input should be greater than 0",
        ),
        (
            {"matrix": MATRIX, "early_stopping_policy": {"kind": "average", "metric": "m"}},
            "hptuning.early_stopping_policy.kind: Input should be 'median' or 'truncation'",
        ),
        ("grid", "hptuning: expected a mapping"),
    ],
)
def test_validation_errors_name_the_path(raw, message):
    assert message in error(raw)


def test_all_problems_are_reported_together():
    with pytest.raises(SpecError) as info:
        parse_hptuning(
            {"matrix": {"a": {"uniform": "0:1"}, "b": {"normal": "0:1"}}, "grid_search": {}}
        )
    assert [path for path, _ in info.value.problems] == [
        "hptuning.matrix.a.uniform",
        "hptuning.matrix.b.normal",
    ]


def test_spec_error_from_validation_for_embedding_models():
    with pytest.raises(ValidationError) as info:
        HPTuningConfig.model_validate({"matrix": {"lr": {"linspace": "1:0:3"}}})
    err = spec_error_from_validation(info.value, "hptuning")
    assert err.problems == [
        ("hptuning.matrix.lr.linspace", "stop value must be strictly higher than start")
    ]

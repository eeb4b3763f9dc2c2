from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.hptuning import parse_hptuning
from app.logic.search import RandomSearch, Trial, suggest
from app.logic.search.random import Permutation

SEED_MATRIX = {
    "learning_rate": {"linspace": "0.001:0.1:5"},
    "dropout": {"values": [0.25, 0.3]},
    "activation": {"values": ["relu", "sigmoid"]},
}


def random_config(matrix: dict, n: int):
    return parse_hptuning({"matrix": matrix, "random_search": {"n_experiments": n}})


def keys(suggestions):
    return [tuple(str(v) for v in s.params.values()) for s in suggestions]


def test_seed_group_gives_ten_distinct_points_of_its_twenty_point_space():
    result = suggest(random_config(SEED_MATRIX, 10), seed=42, history=[])
    assert len(result.suggestions) == 10 and result.finished
    assert len(set(keys(result.suggestions))) == 10
    lrs = {s.params["learning_rate"] for s in result.suggestions}
    assert lrs <= {0.001, 0.02575, 0.0505, 0.07525, 0.1}


def test_capped_at_an_all_discrete_space_instead_of_looping_v0_193():
    result = suggest(random_config(SEED_MATRIX, 500), seed=1, history=[])
    assert len(result.suggestions) == 20 and len(set(keys(result.suggestions))) == 20


def test_same_seed_same_suggestions_other_seed_other_order():
    config = random_config(SEED_MATRIX, 10)
    first = suggest(config, seed=3, history=[])
    assert suggest(config, seed=3, history=[]) == first
    assert suggest(config, seed=4, history=[]).suggestions != first.suggestions


def test_continuous_params_are_sampled_and_batches_are_stable():
    matrix = {"lr": {"loguniform": "-5:0"}, "act": {"values": ["a", "b"]}}
    config = random_config(matrix, 50)
    whole = suggest(config, seed=9, history=[]).suggestions
    assert all(0.0067 < s.params["lr"] <= 1.0 for s in whole)
    engine = RandomSearch(config.matrix, 50, 9)
    assert tuple(engine.iter_suggestions(20, 10)) == whole[20:30]
    partial = suggest(config, seed=9, history=[Trial(i, {}) for i in range(20)], limit=10)
    assert partial.suggestions == whole[20:30] and not partial.finished


def test_quantised_space_with_few_points_ends_instead_of_hanging():
    config = random_config({"x": {"quniform": "0:1:0.5"}}, 10)
    result = suggest(config, seed=0, history=[])
    assert sorted(s.params["x"] for s in result.suggestions) == [0.0, 0.5]
    assert result.finished


def test_pvalues_space_is_capped_at_its_support():
    config = random_config({"x": {"pvalues": [["a", 0.1], ["b", 0.9], ["c", 0.0]]}}, 10)
    result = suggest(config, seed=0, history=[])
    assert sorted(s.params["x"] for s in result.suggestions) == ["a", "b"]


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 3000), key=st.integers(0, 2**64 - 1))
def test_permutation_is_a_bijection(size, key):
    perm = Permutation(size, key)
    assert sorted(perm(i) for i in range(size)) == list(range(size))


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    n=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
    continuous=st.booleans(),
)
def test_random_never_repeats_and_stops_at_the_space_size(lengths, n, seed, continuous):
    matrix = {f"p{i}": {"range": [0, length, 1]} for i, length in enumerate(lengths)}
    if continuous:
        matrix["u"] = {"uniform": "0:1"}
    config = random_config(matrix, n)
    result = suggest(config, seed=seed, history=[])
    size = 1
    for length in lengths:
        size *= length
    expected = n if continuous else min(n, size)
    assert len(result.suggestions) == expected
    assert len(set(keys(result.suggestions))) == expected
    assert suggest(config, seed=seed, history=[]) == result

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.hptuning import parse_hptuning
from app.logic.search import GridSearch, Trial, suggest


def grid(matrix: dict, n: int | None = None):
    return parse_hptuning({"matrix": matrix, "grid_search": {"n_experiments": n}})


MATRIX = {"a": {"values": [1, 2]}, "b": {"range": "0:3:1"}, "c": {"values": ["x", "y"]}}


def test_cartesian_product_in_key_order_last_key_fastest():
    result = suggest(grid(MATRIX), seed=0, history=[])
    assert result.finished and result.iteration == 0
    assert [tuple(s.params.values()) for s in result.suggestions][:5] == [
        (1, 0, "x"),
        (1, 0, "y"),
        (1, 1, "x"),
        (1, 1, "y"),
        (1, 2, "x"),
    ]
    assert [s.index for s in result.suggestions] == list(range(12))


def test_n_experiments_keeps_the_first_n_and_a_larger_value_is_ignored():
    first = suggest(grid(MATRIX, 4), seed=0, history=[]).suggestions
    assert [s.params for s in first] == [
        s.params for s in GridSearch(grid(MATRIX).matrix).iter_suggestions(0, 4)
    ]
    assert len(suggest(grid(MATRIX, 1000), seed=0, history=[]).suggestions) == 12


def test_batches_return_exactly_the_rows_still_missing():
    config = grid(MATRIX)
    batch = suggest(config, seed=0, history=[], limit=5)
    assert [s.index for s in batch.suggestions] == [0, 1, 2, 3, 4] and not batch.finished
    # a crash after inserting only 0..2: the retry asks for 3.. again
    history = [Trial(s.index, s.params) for s in batch.suggestions[:3]]
    again = suggest(config, seed=0, history=history, limit=5)
    assert [s.index for s in again.suggestions] == [3, 4, 5, 6, 7]
    everything = [Trial(i, {}) for i in range(12)]
    done = suggest(config, seed=0, history=everything)
    assert done.suggestions == () and done.finished


def test_lazy_iteration_does_not_build_the_space():
    config = grid({f"p{i}": {"range": "0:10:1"} for i in range(9)})  # 10**9 points
    engine = GridSearch(config.matrix)
    assert engine.space_size == 10**9
    last = list(engine.iter_suggestions(10**9 - 2, 5))
    assert [s.index for s in last] == [10**9 - 2, 10**9 - 1]
    assert last[-1].params == {f"p{i}": 9 for i in range(9)}


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), n=st.none() | st.integers(1, 700)
)
def test_grid_size_is_the_product_of_lengths(lengths, n):
    matrix = {f"p{i}": {"range": [0, length, 1]} for i, length in enumerate(lengths)}
    suggestions = suggest(grid(matrix, n), seed=0, history=[]).suggestions
    size = math.prod(lengths)
    assert len(suggestions) == (size if n is None else min(n, size))
    assert len({tuple(s.params.values()) for s in suggestions}) == len(suggestions)

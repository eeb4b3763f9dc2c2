import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.hptuning import HyperbandConfig, parse_hptuning
from app.logic.search import Trial, suggest
from app.logic.search.hyperband import bracket_size, s_max, schedule
from app.logic.sweep_plan import plan_sweep


def hb_config(max_iter=81, eta=3, rtype="int", matrix=None, optimization="maximize"):
    return parse_hptuning(
        {
            "matrix": matrix or {"lr": {"uniform": "0:1"}},
            "hyperband": {
                "max_iter": max_iter,
                "eta": eta,
                "resource": {"name": "epochs", "type": rtype},
                "metric": {"name": "acc", "optimization": optimization},
            },
        }
    )


def test_worked_example_81_3():
    rungs = schedule(hb_config().hyperband)
    table = {}
    for rung in rungs:
        table.setdefault(rung.bracket, []).append((rung.resource, rung.n_configs))
    assert table == {
        4: [(1, 81), (3, 27), (9, 9), (27, 3), (81, 1)],
        3: [(3, 34), (9, 11), (27, 3), (81, 1)],
        2: [(9, 15), (27, 5), (81, 1)],
        1: [(27, 8), (81, 2)],
        0: [(81, 5)],  # no extra rung at max_iter * eta
    }
    assert [r.iteration for r in rungs] == list(range(15))
    assert sum(r.n_configs for r in rungs) == 206


def test_max_iter_10_eta_3():
    config = hb_config(10, 3, "float").hyperband
    assert s_max(10, 3) == 2
    assert [bracket_size(10, 3, s) for s in (2, 1, 0)] == [9, 5, 3]
    firsts = [r.resource for r in schedule(config) if r.rung == 0]
    assert firsts == pytest.approx([10 / 9, 10 / 3, 10.0])
    ints = [r.resource for r in schedule(hb_config(10, 3, "int").hyperband) if r.rung == 0]
    assert ints == [1, 3, 10]


def test_s_max_is_not_fooled_by_float_noise():
    assert s_max(1000, 10) == 3  # log(1000)/log(10) == 2.9999999999999996


def complete(history, metric):
    return [
        Trial(t.index, t.params, "succeeded", metric(t), t.iteration, t.original_index)
        for t in history
    ]


def run(config, metric, seed=5):
    """Drive the engine like the reconciler: insert, finish everything, ask again."""
    history: list[Trial] = []
    calls = 0
    while True:
        calls += 1
        result = suggest(config, seed=seed, history=history)
        assert suggest(config, seed=seed, history=history) == result
        history += [
            Trial(s.index, s.params, "created", None, s.iteration, s.original_index)
            for s in result.suggestions
        ]
        if result.finished:
            return complete(history, metric)
        if not result.suggestions:
            assert result.waiting
            history = complete(history, metric)
        assert calls < 100


def test_rungs_promote_the_best_clones_with_the_resource_injected():
    config = hb_config()
    history = run(config, lambda t: t.params["lr"])
    by_index = {t.index: t for t in history}
    assert len(history) == 206
    rung1 = [t for t in history if t.iteration == 1]
    best = sorted((t for t in history if t.iteration == 0), key=lambda t: -t.params["lr"])[:27]
    assert [t.original_index for t in rung1] == [t.index for t in best]
    assert all(t.params["epochs"] == 3 for t in rung1)
    # rung 2 ranks the rung-1 clones (their own metrics), not their parents (v0 #703)
    rung2 = [t for t in history if t.iteration == 2]
    assert {by_index[t.original_index].iteration for t in rung2} == {1}
    assert all(t.params["lr"] == by_index[t.original_index].params["lr"] for t in rung2)
    assert max(t.iteration for t in history) == 14
    assert max(t.params["epochs"] for t in history) == 81


def test_minimize_ranks_ascending():
    config = hb_config(9, 3, optimization="minimize")
    history = run(config, lambda t: t.params["lr"])
    first = sorted((t for t in history if t.iteration == 0), key=lambda t: t.params["lr"])
    promoted = [t.original_index for t in history if t.iteration == 1]
    assert promoted == [t.index for t in first[: len(promoted)]]


def test_next_rung_waits_for_every_trial_of_the_rung():
    config = hb_config(9, 3)
    first = suggest(config, seed=1, history=[])
    history = [Trial(s.index, s.params, "succeeded", 0.5, s.iteration) for s in first.suggestions]
    history[-1] = Trial(history[-1].index, history[-1].params, "running", None, 0)
    waiting = suggest(config, seed=1, history=history)
    assert waiting.waiting and waiting.suggestions == () and not waiting.finished
    history[-1] = Trial(history[-1].index, history[-1].params, "failed", None, 0)
    nxt = suggest(config, seed=1, history=history)
    assert nxt.iteration == 1 and len(nxt.suggestions) == 3


def test_failed_rung_without_metrics_skips_the_rest_of_the_bracket():
    config = hb_config(9, 3)
    first = suggest(config, seed=1, history=[]).suggestions
    history = [Trial(s.index, s.params, "failed", None, s.iteration) for s in first]
    result = suggest(config, seed=1, history=history)
    rung = next(r for r in schedule(config.hyperband) if r.bracket == 1 and r.rung == 0)
    assert result.iteration == rung.iteration
    assert [s.index for s in result.suggestions][0] == rung.offset


def test_brackets_draw_from_different_streams():
    config = hb_config(9, 3)
    history = run(config, lambda t: t.params["lr"])
    bracket_lrs = [
        {t.params["lr"] for t in history if t.iteration == r.iteration}
        for r in schedule(config.hyperband)
        if r.rung == 0
    ]
    assert not bracket_lrs[0] & bracket_lrs[1]


def test_small_discrete_space_caps_the_first_rungs():
    config = hb_config(matrix={"x": {"values": [1, 2, 3, 4]}})
    history = run(config, lambda t: t.params["x"])
    assert len([t for t in history if t.iteration == 0]) == 4
    assert len(history) == plan_sweep(config).total_experiments


@settings(max_examples=15, deadline=None)
@given(max_iter=st.integers(1, 60), eta=st.sampled_from([2, 3, 4, 2.5]))
def test_totals_equal_the_plan(max_iter, eta):
    config = hb_config(max_iter, eta)
    history = run(config, lambda t: (t.index * 7919) % 101)
    plan = plan_sweep(config)
    assert len(history) == plan.total_experiments
    assert len({t.iteration for t in history}) == len(plan.iterations)
    assert all(t.params["epochs"] <= max_iter for t in history)
    assert len({t.index for t in history}) == len(history)


def test_max_iter_1_is_a_single_trial():
    config = HyperbandConfig.model_validate(
        {"max_iter": 1, "eta": 3, "resource": {"name": "e"}, "metric": {"name": "m"}}
    )
    assert [(r.n_configs, r.resource) for r in schedule(config)] == [(1, 1.0)]
    assert math.isclose(schedule(config)[0].resource, 1.0)

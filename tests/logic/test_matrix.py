import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.errors import SpecError
from app.logic.hptuning import parse_hptuning
from app.logic.matrix import MatrixParam, space_size


def param(raw: dict) -> MatrixParam:
    return MatrixParam.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"values": ["relu", "sigmoid"]}, ("relu", "sigmoid")),
        ({"range": "1:10:2"}, (1, 3, 5, 7, 9)),  # stop is exclusive
        ({"range": [0, 1, 0.25]}, (0.0, 0.25, 0.5, 0.75)),
        ({"linspace": "0.001:0.1:5"}, (0.001, 0.02575, 0.0505, 0.07525, 0.1)),  # inclusive
        ({"logspace": "0:1:5"}, tuple(np.logspace(0, 1, 5).tolist())),
        ({"logspace": "0:3:4:2"}, (1.0, 2.0, 4.0, 8.0)),  # optional 4th element: base
        ({"logspace": {"start": 0, "stop": 2, "num": 3}}, (1.0, 10.0, 100.0)),  # base 10
        ({"geomspace": "1:100:3"}, (1.0, 10.0, 100.0)),
        ({"linspace": {"start": 0, "stop": 1, "num": 1}}, (0.0,)),
    ],
)
def test_discrete_values_follow_numpy(raw, expected):
    values = param(raw).to_values()
    assert values == pytest.approx(expected) if not isinstance(expected[0], str) else expected
    assert param(raw).length == len(expected)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ({"linspace": "0.001:0.1:5"}, {"linspace": {"start": 0.001, "stop": 0.1, "num": 5}}),
        ({"linspace": [0.001, 0.1, 5]}, {"linspace": {"start": 0.001, "stop": 0.1, "num": 5}}),
        (
            {"range": {"start": 1, "stop": 10, "step": 2}},
            {"range": {"start": 1, "stop": 10, "step": 2}},
        ),
        ({"logspace": "0:3:4:2"}, {"logspace": {"start": 0, "stop": 3, "num": 4, "base": 2}}),
        ({"quniform": "0:1:0.1"}, {"quniform": {"low": 0, "high": 1, "q": 0.1}}),
        ({"uniform": "0:1:3"}, {"uniform": {"low": 0, "high": 1, "size": 3}}),
        ({"normal": "2:1"}, {"normal": {"loc": 2, "scale": 1}}),  # loc > scale passes (v0 #516)
        ({"pvalues": [["a", 0.3], ["b", 0.7]]}, {"pvalues": [["a", 0.3], ["b", 0.7]]}),
        ({"values": [1, "a", None]}, {"values": [1, "a", None]}),
    ],
)
def test_every_form_is_stored_as_a_dict(raw, stored):
    assert param(raw).to_dict() == stored
    assert param(param(raw).to_dict()).to_dict() == stored  # the stored form parses back


def test_classification_sets():
    assert param({"values": [1, 2]}).is_enumerable and not param({"values": [1]}).is_categorical
    assert param({"values": [1, "a"]}).is_categorical
    pvalues = param({"pvalues": [["a", 0.5], ["b", 0.5]]})
    assert pvalues.is_discrete and pvalues.is_distribution and not pvalues.is_enumerable
    assert pvalues.length == 2
    uniform = param({"uniform": "0:1"})
    assert uniform.is_continuous and uniform.is_distribution and uniform.length is None
    with pytest.raises(ValueError, match="distribution"):
        uniform.to_values()
    assert space_size([param({"values": [1, 2]}), param({"range": "0:5:1"})]) == 10
    assert space_size([param({"values": [1, 2]}), uniform]) is None


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize(
    ("raw", "low", "high"),
    [
        ({"uniform": "-1:1"}, -1, 1),
        ({"loguniform": "-5:0"}, math.exp(-5), 1.0),  # bounds in log space
        ({"quniform": "0:10:2"}, 0, 10),
        ({"qloguniform": "0:3:1"}, 1, math.exp(3)),
        ({"lognormal": "0:1"}, 0, math.inf),
        ({"qlognormal": "0:1:0.5"}, 0, math.inf),
    ],
)
def test_samples_fall_in_the_support(raw, low, high):
    samples = param(raw).sample(rng(), 500)
    assert all(low <= x <= high for x in samples)


@pytest.mark.parametrize("kind", ["quniform", "qloguniform", "qnormal", "qlognormal"])
def test_q_variants_floor_to_a_multiple_of_q(kind):
    raw = {"quniform": "0:10:0.5", "qloguniform": "0:3:0.5", "qnormal": "0:3:0.5"}
    spec = raw.get(kind, "0:1:0.5")
    samples = param({kind: spec}).sample(rng(), 300)
    assert all(math.isclose(x / 0.5, round(x / 0.5)) for x in samples)
    assert len(set(samples)) > 1


def test_integer_q_gives_integers_and_floors():
    samples = param({"quniform": "0:100:16"}).sample(rng(), 200)
    assert all(isinstance(x, int) and x % 16 == 0 for x in samples)
    assert max(samples) <= 96  # floor: 99.9 // 16 * 16


def test_qlognormal_is_quantised_not_v0s_exp_of_lognormal():
    plain = param({"lognormal": "0:0.1"}).sample(np.random.default_rng(1), 200)
    quantised = param({"qlognormal": "0:0.1:0.5"}).sample(np.random.default_rng(1), 200)
    assert quantised == [math.floor(x / 0.5) * 0.5 for x in plain]


def test_pvalues_never_draw_zero_probability_values():
    samples = param({"pvalues": [["a", 0.0], ["b", 0.25], ["c", 0.75]]}).sample(rng(), 400)
    assert set(samples) == {"b", "c"}
    assert samples.count("c") > samples.count("b")


def test_size_draws_arrays():
    samples = param({"normal": "0:1:4"}).sample(rng(), 3)
    assert [len(s) for s in samples] == [4, 4, 4]


def error_of(matrix_entry: dict) -> str:
    with pytest.raises(SpecError) as info:
        parse_hptuning({"random_search": {"n_experiments": 1}, "matrix": {"lr": matrix_entry}})
    return str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"linspace": "0.1:0.001:5"}, "lr.linspace: stop value must be strictly higher than start"),
        ({"range": "3:3:1"}, "lr.range: stop value must be strictly higher than start"),
        ({"linspace": "0:1"}, "lr.linspace: expected 3 values (start:stop:num), got 2"),
        ({"logspace": "0:1:2:3:4"}, "lr.logspace: expected 3 or 4 values (start:stop:num:base)"),
        ({"linspace": "0:1:0"}, "lr.linspace.num: num must be a positive integer"),
        ({"linspace": "0:1:2.5"}, "lr.linspace.num: num must be an integer"),
        ({"range": "0:1:0"}, "lr.range.step: step must be positive"),
        ({"range": "0:1:x"}, "lr.range: `x` is not a number"),
        ({"range": {"start": 0, "stop": 1}}, "lr.range: missing key(s): step"),
        ({"range": 5}, "lr.range: expected a string `a:b:c`, a list or a dict"),
        ({"range": {"start": "a", "stop": 1, "step": 1}}, "lr.range.start: `a` is not a number"),
        ({"geomspace": "0:10:3"}, "lr.geomspace: start and stop must be non-zero and of the same"),
        ({"logspace": "0:1:3:-2"}, "lr.logspace.base: base must be positive"),
        ({"values": []}, "lr.values: values must not be empty"),
        ({"pvalues": []}, "lr.pvalues: pvalues must not be empty"),
        ({"pvalues": [["a", 0.3], ["b", 0.3]]}, "lr.pvalues: probabilities must sum to 1, got 0.6"),
        ({"pvalues": [["a", 1.5], ["b", -0.5]]}, "lr.pvalues: probability 1.5 of `a` must be"),
        ({"uniform": "1:0"}, "lr.uniform: high value must be strictly higher than low"),
        ({"quniform": "0:1:0"}, "lr.quniform.q: q must be positive"),
        ({"normal": "0:0"}, "lr.normal.scale: scale must be positive"),
        ({"uniform": "0:1:0"}, "lr.uniform.size: size must be a positive integer"),
        ({}, "hptuning.matrix.lr: one option is required: values, pvalues"),
        ({"values": [1], "range": "0:2:1"}, "lr: only one option per parameter, got values and"),
        ({"valuez": [1]}, "hptuning.matrix.lr.valuez: unknown field"),
        ("0:1:2", "hptuning.matrix.lr: expected a mapping with one of"),
    ],
)
def test_validation_errors_name_the_param_and_option(entry, message):
    error = error_of(entry)
    assert message in error
    assert error.startswith("hptuning.matrix.lr")


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(-50, 50),
    width=st.integers(1, 60),
    step=st.integers(1, 7),
)
def test_range_is_numpy_arange_with_exclusive_stop(start, width, step):
    values = param({"range": f"{start}:{start + width}:{step}"}).to_values()
    assert list(values) == list(range(start, start + width, step))


@settings(max_examples=40, deadline=None)
@given(
    start=st.floats(-100, 100, allow_nan=False),
    width=st.floats(0.01, 100),
    num=st.integers(1, 30),
)
def test_linspace_is_inclusive_with_num_points(start, width, num):
    values = param({"linspace": [start, start + width, num]}).to_values()
    assert len(values) == num
    assert values[0] == pytest.approx(start)
    if num > 1:
        assert values[-1] == pytest.approx(start + width)

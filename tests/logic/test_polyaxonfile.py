"""Parsing and validating polyaxonfiles: kinds, sections, nested keys, rendering of runs."""

from __future__ import annotations

import textwrap

import pytest

from app.logic.errors import SpecError
from app.logic.polyaxonfile import (
    PolyaxonFile,
    experiment_spec,
    experiment_spec_for,
    parse_polyaxonfile,
)
from app.logic.specs import ExperimentSpec, GroupSpec, JobSpec, NotebookSpec

SEED_GROUP = """
version: 1
kind: group
hptuning:
  concurrency: 5
  random_search: {n_experiments: 10}
  matrix:
    learning_rate: {linspace: '0.001:0.1:5'}
    dropout: {values: [0.25, 0.3]}
    activation: {values: [relu, sigmoid]}
declarations: {batch_size: 128, num_steps: 500, num_epochs: 1}
build:
  image: tensorflow/tensorflow:1.4.1-py3
  build_steps: [pip3 install --no-cache-dir -U polyaxon-client]
run:
  cmd: python3 model.py --batch_size={{ batch_size }} --learning_rate={{ learning_rate }}
    --activation={{ activation }}
"""
BUILD = {"image": "python:3.11"}


def _problems(content: object, expected_kind: str | None = None) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_polyaxonfile(content, expected_kind)  # type: ignore[arg-type]
    return info.value.problems


def _file(kind: str, **sections: object) -> dict[str, object]:
    return {"version": 1, "kind": kind, **sections}


# ----------------------------------------------------------------------------- valid files


def test_seed_group_parses() -> None:
    parsed = parse_polyaxonfile(SEED_GROUP, expected_kind="group")
    assert isinstance(parsed.spec, GroupSpec)
    assert parsed.hptuning is not None and parsed.hptuning.concurrency == 5
    assert parsed.declarations == {"batch_size": 128, "num_steps": 500, "num_epochs": 1}
    # matrix values are unknown until a suggestion exists: they render as ""
    assert parsed.command == "python3 model.py --batch_size=128 --learning_rate= --activation="


def test_group_to_dict_keeps_templates_and_stores_hptuning_as_dicts() -> None:
    stored = parse_polyaxonfile(SEED_GROUP).to_dict()
    assert "{{ learning_rate }}" in stored["run"]["cmd"]
    assert stored["hptuning"]["matrix"]["learning_rate"] == {
        "linspace": {"start": 0.001, "stop": 0.1, "num": 5}
    }
    assert stored["hptuning"]["random_search"] == {"n_experiments": 10}
    assert parse_polyaxonfile(stored).to_dict() == stored  # the stored form parses again


def test_tracking_only_experiment_is_valid() -> None:
    parsed = parse_polyaxonfile("version: 1\nkind: experiment\n", expected_kind="experiment")
    assert isinstance(parsed.spec, ExperimentSpec)
    assert parsed.command is None
    assert parsed.to_dict() == {"version": 1, "kind": "experiment"}


@pytest.mark.parametrize(
    "content",
    [
        _file("build", build={"dockerfile": "docker/Dockerfile", "ref": "abc123"}),
        _file("job", build=BUILD, run={"cmd": "python job.py"}),
        _file("notebook", build=BUILD, backend="Lab"),
        _file("tensorboard", build=BUILD, logging={"level": "debug"}),
        _file("experiment", build=BUILD, run={"cmd": ["a", "b"]}, tags=["x", "y", "x"]),
        _file("group", hptuning={"matrix": {"lr": {"values": [1, 2]}}}),
    ],
)
def test_every_kind_parses_from_a_mapping(content: dict[str, object]) -> None:
    parsed = parse_polyaxonfile(content)
    assert parsed.kind == content["kind"]
    assert parsed.spec.kind == content["kind"]


def test_normalisation() -> None:
    parsed = parse_polyaxonfile(
        _file(
            "notebook",
            build=BUILD,
            backend="LAB",
            tags=["b", "a", "b"],
            logging={"level": "warning"},
        )
    )
    assert isinstance(parsed.spec, NotebookSpec)
    assert parsed.spec.backend == "lab"
    assert parsed.tags == ["b", "a"]
    assert parsed.to_dict()["tags"] == ["b", "a"]
    assert parsed.spec.logging is not None and parsed.spec.logging.level == "WARNING"


def test_job_command_and_build_fields() -> None:
    content = """
    version: 1
    kind: job
    build:
      image: python:3.11
      env_vars: [[A, 1], [B, x]]
      commit: 1234567
    run:
      cmd:
        - pip install -r requirements.txt
        - python  job.py \\
            --n 1
    """
    parsed = parse_polyaxonfile(textwrap.dedent(content))
    assert isinstance(parsed.spec, JobSpec)
    assert parsed.command == "pip install -r requirements.txt && python job.py --n 1"
    assert parsed.spec.build.env_vars == [("A", 1), ("B", "x")]
    # YAML reads `1234567` as an int; the string field takes it back as text
    assert parsed.spec.build.code_reference == "1234567"


def test_yaml_timestamps_are_kept_as_text() -> None:
    parsed = parse_polyaxonfile("version: 1\nkind: experiment\ndeclarations: {day: 2019-01-02}\n")
    assert parsed.declarations == {"day": "2019-01-02"}


# ------------------------------------------------------------------------- header problems


@pytest.mark.parametrize(
    ("content", "problems"),
    [
        ("version: 2\nkind: job", [("version", "the version `2` is not supported (use 1)")]),
        ("version: '1'\nkind: job", [("version", "the version `1` is not supported (use 1)")]),
        ("version: true\nkind: job", [("version", "the version `True` is not supported (use 1)")]),
        ("kind: job", [("version", "this section is required")]),
        ("version: 1", [("kind", "this section is required")]),
        (
            "version: 1\nkind: pipeline",
            [
                (
                    "kind",
                    "`pipeline` is not a valid kind; use one of experiment, group, job, build, "
                    "notebook, tensorboard",
                )
            ],
        ),
        ("", [("", "a polyaxonfile must be a mapping of sections")]),
        ("- 1\n- 2", [("", "a polyaxonfile must be a mapping of sections")]),
        ("version: 1\nkind: [", [("", "invalid YAML: expected the node content, but found "
                                  "'<stream end>' (line 2, column 8)")]),
        ({1: "x"}, [("1", "keys must be strings")]),
    ],
)  # fmt: skip
def test_header_problems(content: object, problems: list[tuple[str, str]]) -> None:
    assert _problems(content) == problems


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (
            "experiment",
            "kind: the specification sent correspond to a `group`, expected an `experiment`",
        ),
        ("job", "kind: the specification sent correspond to a `group`, expected a `job`"),
    ],
)
def test_wrong_kind_reads_like_v0(expected: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_polyaxonfile(SEED_GROUP, expected_kind=expected)
    assert str(info.value) == message


def test_unsafe_yaml_tags_are_refused() -> None:
    [(path, reason)] = _problems("version: 1\nkind: !!python/object/apply:os.system ['true']\n")
    assert path == ""
    assert reason.startswith("invalid YAML: could not determine a constructor")


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ["version: 1", "kind: experiment", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines.append("declarations: {bomb: *a8}")
    [(path, reason)] = _problems("\n".join(lines))
    assert reason == "document too large (more than 50000 values)"
    assert path.startswith("a")


# ------------------------------------------------------------------------ section problems


@pytest.mark.parametrize(
    ("content", "problems"),
    [
        (
            _file("job", build=BUILD, run={"cmd": "x"}, foo=1),
            [("foo", "unexpected section for a `job` (allowed: version, kind, logging, tags, "
                     "environment, build, run)")],
        ),
        (
            _file("experiment", hptuning={"matrix": {"lr": {"values": [1]}}}),
            [("hptuning", "unexpected section for a `experiment` (allowed: version, kind, "
                          "logging, tags, environment, declarations, build, run)")],
        ),
        (
            _file("build", build=BUILD, declarations={"a": 1}),
            [("declarations", "unexpected section for a `build` (allowed: version, kind, "
                              "logging, tags, environment, build)")],
        ),
        (
            _file("tensorboard", build=BUILD, backend="lab"),
            [("backend", "unexpected section for a `tensorboard` (allowed: version, kind, "
                         "logging, tags, environment, build)")],
        ),
        (_file("job", build=BUILD), [("run", "this section is required")]),
        (_file("build"), [("build", "this section is required")]),
        (_file("notebook"), [("build", "this section is required")]),
        (_file("group"), [("hptuning", "this section is required")]),
        (
            _file("group", hptuning={"concurrency": 2}),
            [("hptuning.matrix", "A matrix definition is required for group specification")],
        ),
    ],
)  # fmt: skip
def test_sections_per_kind(content: dict[str, object], problems: list[tuple[str, str]]) -> None:
    assert _problems(content) == problems


@pytest.mark.parametrize(
    ("sections", "path"),
    [
        ({"build": {**BUILD, "foo": 1}}, "build.foo"),
        ({"run": {"cmd": "x", "image": "y"}}, "run.image"),
        ({"logging": {"level": "INFO", "color": True}}, "logging.color"),
        ({"environment": {"gpus": 1}}, "environment.gpus"),
        ({"environment": {"resources": {"cpu": {"requests": 1, "max": 2}}}},
         "environment.resources.cpu.max"),
        ({"environment": {"resources": {"disk": {"requests": 1}}}}, "environment.resources.disk"),
        ({"environment": {"persistence": {"data": ["d"], "logs": "x"}}},
         "environment.persistence.logs"),
        ({"environment": {"outputs": {"groups": [1]}}}, "environment.outputs.groups"),
        ({"environment": {"tensorflow": {"n_workers": 1, "default_worker": {"gpu": 1}}}},
         "environment.tensorflow.default_worker.gpu"),
        ({"environment": {"horovod": {"n_workers": 1, "n_ps": 1}}}, "environment.horovod.n_ps"),
        ({"environment": {"mxnet": {"worker": [{"index": 0, "resources": {"tpu": {"x": 1}}}],
                                    "n_workers": 1}}},
         "environment.mxnet.worker.0.resources.tpu.x"),
    ],
)  # fmt: skip
def test_unknown_keys_at_any_depth(sections: dict[str, object], path: str) -> None:
    content = _file("experiment", **sections)
    assert _problems(content) == [(path, "unexpected key")]


def test_distributed_sections_are_for_experiments_only() -> None:
    content = _file("job", build=BUILD, run={"cmd": "x"}, environment={"pytorch": {}})
    assert _problems(content) == [("environment.pytorch", "unexpected key")]


@pytest.mark.parametrize(
    ("sections", "problems"),
    [
        ({"tags": "a,b"}, [("tags", "Input should be a valid list")]),
        ({"tags": ["a", ""]}, [("tags.1", "String should have at least 1 character")]),
        ({"declarations": [1, 2]}, [("declarations", "must be a mapping of names to values")]),
        ({"run": {"cmd": {"a": 1}}},
         [("run.cmd", "must be a non-empty string or a non-empty list of non-empty strings")]),
        ({"run": {"cmd": []}},
         [("run.cmd", "must be a non-empty string or a non-empty list of non-empty strings")]),
        ({"run": {}}, [("run.cmd", "this field is required")]),
        ({"logging": {"level": "LOUD"}},
         [("logging.level", "Input should be 'CRITICAL', 'FATAL', 'ERROR', 'WARN', 'WARNING', "
                            "'INFO', 'DEBUG' or 'NOTSET'")]),
        ({"build": {"image": "a", "dockerfile": "FROM a"}},
         [("build", "exactly one of `image` or `dockerfile` is required")]),
        ({"build": {"build_steps": ["x"]}},
         [("build", "exactly one of `image` or `dockerfile` is required")]),
        ({"build": {"image": "host:5000/a:b:c"}},
         [("build.image", "invalid docker image `host:5000/a:b:c`")]),
        ({"build": {"image": "python 3"}}, [("build.image", "invalid docker image `python 3`")]),
        ({"build": {**BUILD, "ref": "a", "branch": "b"}},
         [("build", "use only one of `ref`, `commit`, `branch` (got ['ref', 'branch'])")]),
        ({"build": {**BUILD, "env_vars": [["A"]]}},
         [("build.env_vars.0.1", "this field is required")]),
        ({"build": {**BUILD, "env_vars": [["A", {"b": 1}]]}},
         [("build.env_vars.0", "the value must be a string, a number or a boolean")]),
        ({"build": {**BUILD, "backend": "docker"}},
         [("build.backend", "Input should be 'native' or 'kaniko'")]),
        ({"build": {**BUILD, "nocache": "maybe"}},
         [("build.nocache", "Input should be a valid boolean, unable to interpret input")]),
        ({"environment": {"node_selector": ["a"]}},
         [("environment.node_selector", "Input should be a valid dictionary")]),
        ({"environment": {"tolerations": {"key": "a"}}},
         [("environment.tolerations", "Input should be a valid list")]),
        ({"environment": {"outputs": {"jobs": [1, "name", {"x": 1}]}}},
         [("environment.outputs.jobs.2", "must be an id (integer) or a name (string)")]),
        ({"environment": {"secret_refs": "s"}},
         [("environment.secret_refs", "Input should be a valid list")]),
        ({"environment": {"tensorflow": {"n_workers": -1}}},
         [("environment.tensorflow.n_workers", "Input should be greater than or equal to 0")]),
        ({"environment": {"tensorflow": {"n_workers": 2, "worker": [{"index": 1}, {"index": 1}]}}},
         [("environment.tensorflow.worker", "replica indexes must be unique (got [1, 1])")]),
        ({"environment": {"mxnet": {"n_ps": 1, "ps": [{"index": 1}]}}},
         [("environment.mxnet", "`ps` has an entry for index 1, but only 1 ps replica(s) are "
                                "requested")]),
        ({"environment": {"tensorflow": {}, "horovod": {}}},
         [("environment", "only one distributed framework may be used (got ['tensorflow', "
                          "'horovod'])")]),
    ],
)  # fmt: skip
def test_bad_values(sections: dict[str, object], problems: list[tuple[str, str]]) -> None:
    assert _problems(_file("experiment", **sections)) == problems


@pytest.mark.parametrize(
    ("resources", "problems"),
    [
        ({"cpu": {"requests": 2, "limits": 1}},
         [("environment.resources.cpu", "requests (2.0) must not exceed limits (1.0)")]),
        ({"cpu": {"requests": -1}},
         [("environment.resources.cpu.requests", "Input should be greater than or equal to 0")]),
        ({"cpu": {"limits": 0}},
         [("environment.resources.cpu.limits", "Input should be greater than 0")]),
        ({"memory": {"requests": "lots"}},
         [("environment.resources.memory.requests",
           "Input should be a valid integer, unable to parse string as an integer")]),
        ({"gpu": {"limits": 1.5}},
         [("environment.resources.gpu.limits",
           "Input should be a valid integer, got a number with a fractional part")]),
        ({"gpu": {"requests": 2, "limits": 1}},
         [("environment.resources.gpu", "requests (2) must not exceed limits (1)")]),
        ({"tpu": 8}, [("environment.resources.tpu",
                       "Input should be a valid dictionary or instance of CountRequirement")]),
    ],
)  # fmt: skip
def test_bad_resources(resources: dict[str, object], problems: list[tuple[str, str]]) -> None:
    content = _file("job", build=BUILD, run={"cmd": "x"}, environment={"resources": resources})
    assert _problems(content) == problems


def test_every_problem_is_reported_at_once() -> None:
    content = _file("job", build={"foo": 1}, run={"cmd": 3}, extra=1)
    paths = [path for path, _ in _problems(content)]
    assert sorted(paths) == ["build.foo", "extra", "run.cmd"]


def test_template_problems_name_their_path() -> None:
    content = _file("experiment", run={"cmd": ["ok", "{{ ''.__class__ }}"]})
    assert _problems(content) == [
        ("run.cmd.1", "unsafe template: access to attribute `__class__` is not allowed")
    ]


def test_hptuning_problems_are_under_hptuning() -> None:
    content = _file("group", hptuning={"matrix": {"lr": {"values": [1]}}, "unknown": 1})
    [(path, _)] = _problems(content)
    assert path == "hptuning.unknown"


# ------------------------------------------------------------------------- runtime helpers


def test_resources_and_replicas_for_a_runtime() -> None:
    spec = experiment_spec(
        _file(
            "experiment",
            run={"cmd": "python train.py"},
            environment={
                "resources": {"cpu": {"requests": 1, "limits": 2}, "gpu": {"limits": 1}},
                "node_selector": {"pool": 7},
                "tensorflow": {
                    "n_workers": 2,
                    "n_ps": 1,
                    "default_worker": {"resources": {"memory": {"limits": 512}}},
                    "worker": [{"index": 1, "resources": {"gpu": {"limits": 2}}}],
                },
            },
        )
    )
    assert spec.environment is not None and spec.environment.resources is not None
    assert spec.environment.resources.flat() == {
        "cpu_requests": 1.0,
        "cpu_limits": 2.0,
        "memory_requests": None,
        "memory_limits": None,
        "gpu_requests": None,
        "gpu_limits": 1,
    }
    assert spec.environment.node_selector == {"pool": "7"}
    assert spec.environment.framework == "tensorflow"
    replicas = {(r.role, r.index): r.environment for r in spec.replicas()}
    assert list(replicas) == [("master", 0), ("worker", 0), ("worker", 1), ("ps", 0)]
    assert replicas[("master", 0)].resources == spec.environment.resources
    assert replicas[("worker", 0)].resources.flat()["memory_limits"] == 512
    # a per-index entry replaces the default's fields it sets
    assert replicas[("worker", 1)].resources.flat()["gpu_limits"] == 2
    assert replicas[("worker", 1)].resources.flat()["memory_limits"] is None
    assert replicas[("ps", 0)].resources is None


def test_list_entries_without_index_use_their_position() -> None:
    spec = experiment_spec(
        _file(
            "experiment",
            environment={
                "horovod": {"n_workers": 2, "worker": [{}, {"node_selector": {"a": "b"}}]}
            },
        )
    )
    envs = [r.environment for r in spec.replicas() if r.role == "worker"]
    assert [env.node_selector for env in envs] == [None, {"a": "b"}]


def test_single_replica_experiment_has_only_a_master() -> None:
    spec = experiment_spec(_file("experiment", run={"cmd": "x"}))
    assert [(r.role, r.index) for r in spec.replicas()] == [("master", 0)]


# --------------------------------------------------------------------- experiment of a run


def test_experiment_spec_for_a_group_suggestion() -> None:
    group = parse_polyaxonfile(SEED_GROUP)
    suggestion = {"learning_rate": 0.0258, "dropout": 0.3, "activation": "sigmoid", "batch_size": 1}
    experiment, declarations = experiment_spec_for(group, suggestion)
    assert isinstance(experiment, PolyaxonFile)
    assert experiment.kind == "experiment"
    assert declarations == {
        "learning_rate": 0.0258,
        "dropout": 0.3,
        "activation": "sigmoid",
        "batch_size": 128,  # the static declaration wins over the suggestion
        "num_steps": 500,
        "num_epochs": 1,
    }
    assert experiment.command == (
        "python3 model.py --batch_size=128 --learning_rate=0.0258 --activation=sigmoid"
    )
    stored = experiment.to_dict()
    assert "hptuning" not in stored
    assert stored["kind"] == "experiment"
    assert stored["declarations"] == declarations
    assert stored["run"]["cmd"] == experiment.command
    assert parse_polyaxonfile(stored, expected_kind="experiment").command == experiment.command


def test_experiment_spec_for_renders_typed_fields() -> None:
    content = _file(
        "experiment",
        declarations={"gpus": 2, "pool": "{{ zone }}-gpu"},
        environment={
            "resources": {"gpu": {"limits": "{{ gpus }}"}},
            "node_selector": {"p": "{{ pool }}"},
        },
        run={"cmd": "train --gpus {{ gpus }}"},
    )
    experiment, declarations = experiment_spec_for(content, {"zone": "eu"})
    assert declarations == {"zone": "eu", "gpus": 2, "pool": "eu-gpu"}
    spec = experiment.spec
    assert isinstance(spec, ExperimentSpec) and spec.environment is not None
    assert spec.environment.resources.flat()["gpu_limits"] == 2
    assert spec.environment.node_selector == {"p": "eu-gpu"}


def test_experiment_spec_for_accepts_yaml_text_and_no_params() -> None:
    experiment, declarations = experiment_spec_for("version: 1\nkind: experiment\n")
    assert declarations == {}
    assert experiment.to_dict() == {"version": 1, "kind": "experiment"}


def test_experiment_spec_for_refuses_non_experiment_kinds() -> None:
    with pytest.raises(SpecError) as info:
        experiment_spec_for(_file("job", build=BUILD, run={"cmd": "x"}))
    assert info.value.problems == [("kind", "a `job` specification has no experiments")]


def test_experiment_spec_for_reports_bad_rendered_values() -> None:
    group = parse_polyaxonfile(
        _file(
            "group",
            hptuning={"matrix": {"n": {"values": ["a", 2]}}},
            environment={"tensorflow": {"n_workers": "{{ n|default(1, true) }}"}},
        )
    )
    assert experiment_spec_for(group, {"n": 2})[0].spec.replicas()[-1].index == 1
    with pytest.raises(SpecError) as info:
        experiment_spec_for(group, {"n": "a"})
    assert info.value.problems == [
        (
            "environment.tensorflow.n_workers",
            "Input should be a valid integer, unable to parse string as an integer",
        )
    ]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        ({"dockerfile": "/etc/Dockerfile"}, "build.dockerfile"),
        ({"dockerfile": "../Dockerfile"}, "build.dockerfile"),
        ({"dockerfile": "docker/../../Dockerfile"}, "build.dockerfile"),
        ({"dockerfile": "Dockerfile\nrm -rf /"}, "build.dockerfile"),
        ({"image": "python:3.11", "context": "/srv"}, "build.context"),
        ({"image": "python:3.11", "context": "a/.."}, "build.context"),
    ],
)
def test_build_paths_stay_inside_the_code(build: dict[str, str], field: str) -> None:
    problems = _problems(_file("build", build=build))
    assert any(path == field and "relative path" in reason for path, reason in problems), problems


def test_a_dockerfile_path_inside_the_code_is_accepted() -> None:
    spec = parse_polyaxonfile(
        _file("build", build={"dockerfile": "docker/Dockerfile", "context": "docker"})
    )
    assert spec.spec.build.dockerfile == "docker/Dockerfile" and spec.spec.build.context == "docker"

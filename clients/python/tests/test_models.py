"""The client's models match plx's OpenAPI field for field, so they cannot drift apart."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from plx_client import models

create_app = pytest.importorskip("app.main").create_app

# client model -> the component plx's OpenAPI names it
COMPONENTS: dict[type[BaseModel], str] = {
    models.User: "UserOut",
    models.Project: "ProjectOut",
    models.ProjectDetail: "ProjectDetailOut",
    models.CodeReference: "CodeReferenceOut",
    models.Repo: "RepoOut",
    models.Experiment: "ExperimentOut",
    models.ExperimentDetail: "ExperimentDetailOut",
    models.ExperimentJob: "ExperimentJobOut",
    models.Metric: "MetricOut",
    models.ExperimentStatus: "ExperimentStatusOut",
    models.JobStatus: "JobStatusOut",
    models.Job: "JobOut",
    models.JobDetail: "JobDetailOut",
    models.Build: "BuildOut",
    models.BuildDetail: "BuildDetailOut",
    models.Group: "GroupOut",
    models.GroupDetail: "GroupDetailOut",
    models.GroupStatus: "GroupStatusOut",
    models.GroupDecision: "GroupDecisionOut",
    models.GroupMetric: "GroupMetricOut",
    models.SweepPlan: "SweepPlanOut",
    models.Tensorboard: "TensorboardOut",
    models.Notebook: "NotebookOut",
    models.Series: "SeriesOut",
    models.ExperimentSeries: "ExperimentSeriesOut",
    models.GroupPoint: "GroupPointOut",
    models.Rung: "RungOut",
    models.GroupPoints: "GroupPointsOut",
}
JSON_TYPES = {"integer": int, "string": str, "boolean": bool, "number": float}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> dict:
    from app.config import Settings

    data = tmp_path_factory.mktemp("openapi")
    spec = create_app(Settings(data_dir=data)).openapi()
    return spec["components"]["schemas"]


def _types(prop: dict) -> set[str]:
    """The JSON types a property admits (anyOf flattened; refs and untyped count as object)."""
    found = set()
    for option in prop.get("anyOf", [prop]):
        found.add(option.get("type", "object") if "$ref" not in option else "object")
    return found


@pytest.mark.parametrize("model", list(COMPONENTS), ids=lambda m: m.__name__)
def test_model_matches_openapi(model: type[BaseModel], schemas: dict):
    component = schemas[COMPONENTS[model]]
    props = component["properties"]
    assert set(model.model_fields) == set(props), f"{model.__name__} vs {COMPONENTS[model]}"
    server_required = set(component.get("required", []))
    for name, field in model.model_fields.items():
        types = _types(props[name])
        # A field plx may send as null is optional (or nullable) in the client.
        if "null" in types or name not in server_required:
            assert not field.is_required() or "null" in types, f"{model.__name__}.{name}"
        if field.is_required():
            assert name in server_required, f"{model.__name__}.{name} required only here"
        # Scalars agree on their type.
        scalar = types - {"null", "object", "array"}
        if len(scalar) == 1 and field.annotation in (int, str, bool, float):
            expected = JSON_TYPES[scalar.pop()]
            assert field.annotation is expected or (
                expected is float and field.annotation is int
            ), f"{model.__name__}.{name}: {field.annotation} vs {expected}"


def test_every_response_component_has_a_model(schemas: dict):
    """A new *Out schema in plx gets a client model (or is listed here as not needed)."""
    not_needed = {
        "EventOut",
        "BookmarkOut",
        "TokenOut",
        "VersionOut",
        "ChartVersionOut",
        "LogHandlerOut",
        "ExperimentJobDetailOut",
        "PluginOut",
    }
    outs = {n for n in schemas if n.endswith("Out") and not n.startswith("Page")}
    assert outs - set(COMPONENTS.values()) - not_needed == set()

"""Parse and validate polyaxonfiles (v1), and render the experiment spec of a run. No I/O.

`parse_polyaxonfile` checks a file as v0's `BaseSpecification` did: the file rendered against its
own `declarations` must validate. The file keeps its raw (unrendered) content, because a group's
experiments are rendered later, one matrix suggestion at a time, by `experiment_spec_for`.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import yaml
from pydantic import ValidationError

from app.logic.errors import SpecError, format_path
from app.logic.hptuning import HPTuningConfig
from app.logic.matrix import DEFAULT_MAX_VALUES
from app.logic.specs import (
    KINDS,
    SPEC_MODELS,
    AnySpec,
    ExperimentSpec,
    GroupSpec,
    allowed_sections,
)
from app.logic.templating import merge_declarations, render_declarations, render_sections

SUPPORTED_VERSION = 1
# expanded values (aliases count each time they are used): a YAML alias bomb stops here
MAX_DOCUMENT_NODES = 50_000
# expanded characters of strings and keys: one long string behind many aliases stops here (it
# would be written out once per alias when the file is stored or rendered)
MAX_DOCUMENT_CHARS = 10_000_000
# `[[[[...` or `{a: {a: ...`: PyYAML recurses once per level and takes seconds to fail at the
# recursion limit (a 4 KB body held the event loop for over a second): refuse before parsing.
MAX_FLOW_DEPTH = 100


@dataclass(frozen=True)
class PolyaxonFile:
    """A validated polyaxonfile.

    `raw` is the content as written (JSON-safe, templates intact); `spec` the typed model of the
    file rendered against its static declarations.
    """

    kind: str
    raw: dict[str, Any]
    spec: AnySpec

    @property
    def declarations(self) -> dict[str, Any]:
        return dict(getattr(self.spec, "declarations", None) or {})

    @property
    def hptuning(self) -> HPTuningConfig | None:
        return self.spec.hptuning if isinstance(self.spec, GroupSpec) else None

    @property
    def command(self) -> str | None:
        """The sanitised command (list items joined with ` && `), None without a `run`."""
        return self.spec.command

    @property
    def tags(self) -> list[str]:
        return list(self.spec.tags or [])

    def to_dict(self) -> dict[str, Any]:
        """The normalised content to store: raw sections, deduplicated tags, stored hptuning."""
        out = dict(self.raw)
        if isinstance(out.get("tags"), list):
            out["tags"] = list(dict.fromkeys(out["tags"]))
        if self.hptuning is not None:
            out["hptuning"] = self.hptuning.to_dict()
        return out


def parse_polyaxonfile(
    content: str | Mapping[str, Any],
    expected_kind: str | None = None,
    *,
    max_values: int | None = DEFAULT_MAX_VALUES,
) -> PolyaxonFile:
    """Validate a polyaxonfile given as YAML text or an already-parsed mapping.

    Raises SpecError naming each problem's dotted path; `expected_kind` turns a valid file of
    another kind into an error (v0: "the specification sent correspond to a `group`").
    `max_values` bounds the values a group's matrix defines, computed without building them
    (PLX_MAX_GROUP_EXPERIMENTS; None only for content already checked when it was stored).
    """
    raw = load_content(content)
    kind = _check_header(raw, expected_kind)
    declarations = _static_declarations(raw)
    rendered = render_sections(raw, declarations)
    if "declarations" in raw:
        rendered["declarations"] = declarations
    return PolyaxonFile(kind=kind, raw=raw, spec=_validate(kind, rendered, max_values))


def experiment_spec_for(
    source: PolyaxonFile | str | Mapping[str, Any], params: Mapping[str, Any] | None = None
) -> tuple[PolyaxonFile, dict[str, Any]]:
    """The experiment spec of one run of a group or experiment file, and its declarations.

    `params` (a matrix suggestion, or the declarations sent with an experiment) are merged under
    the file's static declarations, which win on a clash as in v0. The result is the fully
    rendered file with `hptuning` removed and `kind: experiment` (v0 `get_experiment_spec`).
    """
    parsed = source if isinstance(source, PolyaxonFile) else parse_polyaxonfile(source)
    if parsed.kind not in ("experiment", "group"):
        reason = f"a `{parsed.kind}` specification has no experiments"
        raise SpecError("kind", reason)
    static = parsed.raw.get("declarations") or {}
    declarations = render_declarations(
        merge_declarations(_json_safe(params or {}, "params"), static)
    )
    data = {key: value for key, value in parsed.raw.items() if key != "hptuning"}
    data["kind"] = "experiment"
    data.pop("declarations", None)
    if declarations:
        data["declarations"] = declarations
    rendered = render_sections(data, declarations)
    spec = _validate("experiment", rendered)
    return PolyaxonFile(kind="experiment", raw=rendered, spec=spec), declarations


def experiment_spec(source: PolyaxonFile | str | Mapping[str, Any]) -> ExperimentSpec:
    """Shortcut: the typed spec of an experiment file with no extra params."""
    return cast(ExperimentSpec, experiment_spec_for(source)[0].spec)


# --------------------------------------------------------------------------------- loading


def load_content(content: str | Mapping[str, Any]) -> dict[str, Any]:
    """YAML text (safe loader only) or a mapping -> a JSON-safe dict."""
    if isinstance(content, str):
        _check_flow_depth(content)
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise SpecError("", f"invalid YAML: {_yaml_problem(exc)}") from None
    else:
        data = content
    if not isinstance(data, Mapping):
        raise SpecError("", "a polyaxonfile must be a mapping of sections")
    return _json_safe(data, "")


def _check_flow_depth(text: str) -> None:
    """Brackets and braces nested deeper than MAX_FLOW_DEPTH (quotes are not parsed: a scalar
    with a hundred unbalanced `[` is not a polyaxonfile anyone writes)."""
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                raise SpecError("", f"invalid YAML: nested deeper than {MAX_FLOW_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return problem
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def _json_safe(value: Any, path: str) -> Any:
    budget = [MAX_DOCUMENT_NODES, MAX_DOCUMENT_CHARS]
    return _to_json(value, path, budget)


def _to_json(value: Any, path: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(path, f"document too large (more than {MAX_DOCUMENT_NODES} values)")
    if isinstance(value, str):
        _spend_chars(value, path, budget)
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise SpecError(path, "numbers must be finite")
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()  # YAML timestamps are kept as the text users wrote
    if isinstance(value, Mapping):
        return _mapping_to_json(value, path, budget)
    if isinstance(value, list | tuple):
        return [_to_json(item, _join(path, i), budget) for i, item in enumerate(value)]
    raise SpecError(path, f"unsupported value of type `{type(value).__name__}`")


def _mapping_to_json(value: Mapping[Any, Any], path: str, budget: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise SpecError(_join(path, key), "keys must be strings")
        _spend_chars(key, path, budget)
        out[key] = _to_json(item, _join(path, key), budget)
    return out


def _spend_chars(text: str, path: str, budget: list[int]) -> None:
    budget[1] -= len(text)
    if budget[1] < 0:
        raise SpecError(path, f"document too large (more than {MAX_DOCUMENT_CHARS} characters)")


def _join(path: str, part: str | int) -> str:
    return f"{path}.{part}" if path else str(part)


# ------------------------------------------------------------------------------ validation


def _check_header(raw: Mapping[str, Any], expected_kind: str | None) -> str:
    problems: list[tuple[str, str]] = []
    version = raw.get("version")
    if "version" not in raw:
        problems.append(("version", "this section is required"))
    elif isinstance(version, bool) or version != SUPPORTED_VERSION:
        problems.append(("version", f"the version `{version}` is not supported (use 1)"))
    kind = raw.get("kind")
    if "kind" not in raw:
        problems.append(("kind", "this section is required"))
    elif kind not in KINDS:
        problems.append(("kind", f"`{kind}` is not a valid kind; use one of {', '.join(KINDS)}"))
    elif expected_kind is not None and kind != expected_kind:
        reason = (
            f"the specification sent correspond to a `{kind}`, "
            f"expected {_article(expected_kind)} `{expected_kind}`"
        )
        problems.append(("kind", reason))
    if problems:
        raise SpecError(problems)
    return str(kind)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _static_declarations(raw: Mapping[str, Any]) -> dict[str, Any]:
    declarations = raw.get("declarations")
    if declarations is None:
        return {}
    if not isinstance(declarations, Mapping):
        raise SpecError("declarations", "must be a mapping of names to values")
    return render_declarations(declarations)


def _validate(
    kind: str, data: Mapping[str, Any], max_values: int | None = DEFAULT_MAX_VALUES
) -> AnySpec:
    try:
        model = SPEC_MODELS[kind]
        return model.model_validate(data, context={"max_values": max_values})  # type: ignore[return-value]
    except ValidationError as exc:
        raise spec_error(exc, kind) from None


def spec_error(exc: ValidationError, kind: str) -> SpecError:
    """Pydantic errors as (dotted path, reason) problems; nested SpecErrors keep their paths."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        base = format_path(error["loc"])
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, SpecError):
            problems.extend((_join(base, path) if path else base, r) for path, r in inner.problems)
        else:
            problems.append((base, _reason(error, kind)))
    return SpecError(problems)


def _reason(error: Mapping[str, Any], kind: str) -> str:
    if error["type"] == "extra_forbidden":
        if len(error["loc"]) == 1:
            allowed = ", ".join(allowed_sections(kind))
            return f"unexpected section for a `{kind}` (allowed: {allowed})"
        return "unexpected key"
    if error["type"] == "missing":
        return "this section is required" if len(error["loc"]) == 1 else "this field is required"
    return str(error["msg"]).removeprefix("Value error, ")

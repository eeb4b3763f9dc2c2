"""`{{ x }}` templating of polyaxonfile sections, as v0's `Parser.parse` did (polyaxon-v0.md 1.3).

A polyaxonfile is untrusted input, so templates run in a Jinja2 sandbox narrowed further than
Jinja's own: only expressions, allow-listed filters and tests, no calls, loops, macros or `set`,
attribute access limited to mapping keys. Anything else raises a SpecError naming the path of
the offending value.

Memory is bounded *before* it is spent: every operation that builds a value (`*`, `**`, `+`,
`%` formatting, `~`, slices, the filters that copy, each printed expression) first estimates the
size of its result, counting a value shared by reference once per reference (`[a, a, a]|join`
costs three `a`), and charges it to a budget per rendered string. `'%200000000d' % 1` or a
`join` of a list repeating a long declaration is refused, not built and then measured.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from app.logic.errors import SpecError

# v0 rendered these sections; `hptuning` is read raw so matrix definitions stay literal.
RENDERED_SECTIONS = ("environment", "logging", "tags", "build", "run")

MAX_RENDERED_CHARS = 100_000
# Characters (estimated) that the operations of one rendered string may build in total.
MAX_RENDER_BUDGET = 1_000_000
MAX_SEQUENCE_PRODUCT = 10_000
MAX_POWER_BITS = 4_096
# Size factor of a filter's result over its inputs (repr and JSON escape characters).
_COPYING_FILTERS = {
    "join": 1, "list": 1, "sort": 1, "sum": 1, "string": 6, "tojson": 6,
    "capitalize": 1, "lower": 1, "upper": 1, "title": 1, "trim": 1,
}  # fmt: skip
_FLOAT_CHARS = 320  # the longest `%f` of a float (1e308)
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "template_budget", default=None
)
# Jinja's optimiser and Python's compiler are slow or fail on deeply nested expressions
MAX_TEMPLATE_DEPTH = 50
# a template whose output is a new template is rendered again (v0 recursed without a bound)
MAX_RENDER_PASSES = 10

_ALLOWED_FILTERS = (
    "abs capitalize count d default first float int join last length list lower max min "
    "round sort string sum title tojson trim upper"
).split()
_ALLOWED_TESTS = (
    "boolean defined divisibleby eq equalto even false float ge greaterthan gt in integer "
    "iterable le lessthan lt mapping ne none number odd sequence string true undefined"
).split()
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.CondExpr,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Compare, nodes.Operand,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod,
    nodes.Pow, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword,
)  # fmt: skip
_RESERVED_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})


def _size(value: Any, limit: int) -> int:
    """Characters `value` takes once printed, shared references counted each time; stops
    counting past `limit`, so the cost is O(limit) whatever the value."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, list | tuple):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        else:
            total += 16
    return total


def _charge(estimate: int, what: str) -> None:
    """Spend `estimate` characters of the current render's budget, or refuse the operation."""
    budget = _BUDGET.get()
    remaining = MAX_RENDER_BUDGET if budget is None else budget[0]
    if estimate > MAX_RENDERED_CHARS or estimate > remaining:
        raise SecurityError(f"{what} result too large")
    if budget is not None:
        budget[0] -= estimate


def _sizes(values: Any, what: str, factor: int = 1) -> None:
    _charge(factor * _size(values, MAX_RENDER_BUDGET), what)


def _check_format(fmt: str, args: Any) -> None:
    """`fmt % args` costs its text, its arguments, and each spec's width and precision."""
    estimate = len(fmt) + _size(args, MAX_RENDER_BUDGET)
    for match in _FORMAT_SPEC.finditer(fmt):
        width, precision, _ = match.groups()
        if "*" in (width, precision):
            raise SecurityError("`*` widths are not allowed in `%` formatting")
        for number in (width, precision):
            if number:
                estimate += int(number) if len(number) < 10 else MAX_RENDER_BUDGET
        estimate += _FLOAT_CHARS
    _charge(estimate, "`%`")


class _CheckedCodeGenerator(CodeGenerator):
    """`a ~ b` and `a[i:j]` go through the environment, which charges their size first (Jinja
    compiles both to plain Python, out of the sandbox's sight)."""

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _checked_filter(name: str, function: Any) -> Any:
    factor = _COPYING_FILTERS[name]

    @functools.wraps(function)  # keeps Jinja's pass_eval_context / pass_environment marks
    def checked(*args: Any, **kwargs: Any) -> Any:
        inputs = [a for a in args if not hasattr(a, "autoescape")] + list(kwargs.values())
        _sizes(inputs, f"`{name}`", factor)
        return function(*args, **kwargs)

    return checked


def _finalize(value: Any) -> Any:
    """Each printed expression is charged before it is turned into text."""
    if not isinstance(value, str):
        _sizes(value, "printed value", 2)
    return value


class _PolyaxonfileSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with unsafe access raising instead of rendering as empty."""

    code_generator_class = _CheckedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def checked_concat(self, parts: tuple[Any, ...]) -> str:
        _sizes(parts, "`~`", 2)
        return "".join(str(part) for part in parts)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute `{attribute}` is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        # declarations are plain data: `x.y` means the key `y` of the mapping `x`, nothing else
        if attribute.startswith("_"):
            raise SecurityError(f"access to attribute `{attribute}` is not allowed")
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and argument.startswith("_"):
            if not (isinstance(obj, Mapping) and argument in obj):
                raise SecurityError(f"access to attribute `{argument}` is not allowed")
        if isinstance(argument, slice) and isinstance(obj, list | tuple | str):
            _sizes(obj, "slice")  # a copy, at most the size of the original
        if isinstance(obj, Mapping | list | tuple | str):
            try:
                return obj[argument]
            except (KeyError, IndexError, TypeError):
                pass
        return self.undefined(obj=obj, name=str(argument))

    def call(self, _context: Any, _obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("function calls are not allowed in a polyaxonfile template")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_format(left, right)
            return left % right
        if operator == "+":
            if not (_is_number(left) and _is_number(right)):
                _sizes((left, right), "`+`")
            return left + right
        _check_product(left, right)
        return left * right


def _check_power(base: Any, exponent: Any) -> None:
    if not (_is_number(base) and _is_number(exponent)):
        raise SecurityError("`**` needs two numbers")
    if isinstance(base, int) and isinstance(exponent, int):
        if abs(exponent) * max(abs(base).bit_length(), 1) > MAX_POWER_BITS:
            raise SecurityError("`**` result too large")


def _check_product(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            if len(seq) * max(times, 0) > MAX_SEQUENCE_PRODUCT:
                raise SecurityError("`*` result too large")
            _charge(_size(seq, MAX_RENDER_BUDGET) * max(times, 0), "`*`")
    if isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_POWER_BITS:
            raise SecurityError("`*` result too large")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _build_environment() -> _PolyaxonfileSandbox:
    # v0 used plain jinja2.Environment(): undefined renders as "" (chained lookups too, here)
    env = _PolyaxonfileSandbox(undefined=ChainableUndefined, autoescape=False, finalize=_finalize)
    env.globals.clear()
    env.filters = {
        name: _checked_filter(name, env.filters[name])
        if name in _COPYING_FILTERS
        else env.filters[name]
        for name in _ALLOWED_FILTERS
    }
    env.tests = {name: env.tests[name] for name in _ALLOWED_TESTS}
    return env


_ENV = _build_environment()
_TEMPLATE_MARKERS = re.compile(r"{{|{%|{#")


def _check_tree(tree: nodes.Node) -> None:
    for node, depth in _walk(tree):
        if depth > MAX_TEMPLATE_DEPTH:
            raise SecurityError(f"expression nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        if not isinstance(node, _ALLOWED_NODES):
            raise SecurityError(f"`{type(node).__name__}` is not allowed in a template")
        if isinstance(node, nodes.Name) and node.name in _RESERVED_NAMES:
            raise SecurityError(f"the name `{node.name}` is not allowed in a template")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise SecurityError(f"access to attribute `{node.attr}` is not allowed")


def _walk(tree: nodes.Node) -> Iterator[tuple[nodes.Node, int]]:
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    # a group renders the same strings once per experiment: check and compile them once
    tree = _ENV.parse(source)
    _check_tree(tree)
    return _ENV.from_string(tree)


def render_string(source: str, context: Mapping[str, Any], path: str) -> str:
    """Render one template string; every failure becomes a SpecError at `path`."""
    token = _BUDGET.set([MAX_RENDER_BUDGET])
    try:
        rendered = _render(_compile(source), context)
    except SecurityError as exc:
        raise SpecError(path, f"unsafe template: {exc}") from None
    except (TemplateError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise SpecError(path, f"template could not be rendered: {_short(str(exc))}") from None
    except (SyntaxError, MemoryError):
        # Python's own limits on the compiled template (200 nested parentheses, ...).
        reason = "template could not be rendered: expression nested too deeply"
        raise SpecError(path, reason) from None
    finally:
        _BUDGET.reset(token)
    if rendered is None:
        raise SpecError(path, f"rendered value longer than {MAX_RENDERED_CHARS} characters")
    return rendered


def _render(template: Template, context: Mapping[str, Any]) -> str | None:
    """The output, streamed: None as soon as it passes MAX_RENDERED_CHARS."""
    parts: list[str] = []
    length = 0
    for part in template.generate(**context):
        length += len(part)
        if length > MAX_RENDERED_CHARS:
            return None
        parts.append(part)
    return "".join(parts)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def literal(text: str) -> Any:
    """`"0.1"` -> 0.1, `"[1, 2]"` -> [1, 2], `"relu"` -> "relu" (v0's `ast.literal_eval` step).

    Only JSON-like results are kept, so the value can be stored and rendered again: tuples,
    sets, bytes, complex numbers, `...` and non-finite floats stay strings.
    """
    if len(text) > MAX_RENDERED_CHARS:
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return value if _is_json_like(value) else text


def _is_json_like(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json_like(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_like(v) for k, v in value.items())
    return False


def render_value(value: Any, context: Mapping[str, Any], path: str) -> Any:
    """Render every string inside `value` (dict values, list items), literal-typing results."""
    if isinstance(value, str):
        return _render_text(value, context, path)
    if isinstance(value, Mapping):
        return {key: render_value(item, context, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context, f"{path}.{i}") for i, item in enumerate(value)]
    return value


def _render_text(text: str, context: Mapping[str, Any], path: str) -> Any:
    for _ in range(MAX_RENDER_PASSES):
        if not _TEMPLATE_MARKERS.search(text):
            return literal(text)
        rendered = render_string(text, context, path)
        if rendered == text:
            return literal(text)
        text = rendered
    raise SpecError(path, "template does not settle (does a value refer to itself?)")


def merge_declarations(params: Mapping[str, Any], static: Mapping[str, Any]) -> dict[str, Any]:
    """v0's `deep_update(params, static)`: on a key clash the static declarations win."""
    merged: dict[str, Any] = dict(params)
    for key, value in static.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_declarations(current, value)
        else:
            merged[key] = value
    return merged


def render_declarations(declarations: Mapping[str, Any]) -> dict[str, Any]:
    """Declarations rendered against themselves, so they can refer to each other."""
    return render_value(declarations, declarations, "declarations")


def render_sections(data: Mapping[str, Any], declarations: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a polyaxonfile dict with the v0 sections rendered; `hptuning` stays raw."""
    return {
        key: render_value(value, declarations, key) if key in RENDERED_SECTIONS else value
        for key, value in data.items()
    }


def sanitize_cmd(cmd: str | list[str]) -> str:
    """v0's `sanitize_cmd`: whitespace runs collapse (inside quotes too), `\\` continuations go,
    and list items are joined with ` && `."""
    if isinstance(cmd, list):
        return " && ".join(sanitize_cmd(item) for item in cmd)
    tokens = (token.strip("\\") for token in cmd.split() if token != "\\")
    return " ".join(token for token in tokens if token)

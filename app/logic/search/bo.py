"""Bayesian optimisation: n_initial_trials random trials, then one GP suggestion per iteration.

Each iteration waits until every trial is done (v0 #707: concurrency is irrelevant after the
initial trials). The acquisition is maximised over seeded random candidates, every point of a
small all-discrete space, and a local refinement of continuous params; an observed point is never
suggested again (v0 #595 repeated them).

Cost, for one suggestion over n observations (about 50 ms CPU at n = 1,000; target 100 ms):
- kernel hyperparameters are fitted on at most 128 evenly spread observations, then the GP is
  conditioned on all n with them fixed: one kernel matrix and one O(n^3) Cholesky (about 14 ms);
- the candidates are scored in one predict call, whose O(n^2) solve per candidate is the other
  large term (about 15 ms for 500); `n_warmup` trades it against how well the space is covered;
- BLAS runs on one thread. At this size threads gain little even on an idle machine, and on a
  shared one they spin against other work: 150-600 ms instead of 50-70 ms wall. One thread also
  makes the floating-point result, hence the suggestion, independent of the number of cores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, Kernel, Matern
from threadpoolctl import ThreadpoolController

from app.logic.hptuning import BOConfig, UtilityFunctionConfig
from app.logic.matrix import MatrixParam, freeze
from app.logic.search.base import Suggestion, SuggestResult, Trial, derive_seed, params_key
from app.logic.search.grid import GridSearch
from app.logic.search.random import RandomSearch

DEFAULT_CANDIDATES = 500
DEFAULT_REFINEMENTS = 5
_ENUMERATE_UP_TO = 4096  # an all-discrete space this small is scored point by point
_FIT_SUBSET = 128  # kernel hyperparameters are fitted on at most this many observations
_REFINE_SAMPLES = 32


class Space:
    """Encodes params into the unit cube: one-hot for categorical values, min-max otherwise."""

    def __init__(self, matrix: Mapping[str, MatrixParam]) -> None:
        self.names = tuple(matrix)
        self.params = tuple(matrix.values())
        self._slots: list[tuple[int, int]] = []  # (first column, width) per param
        self._lookup: list[dict[Any, int] | None] = []
        self._bounds: list[tuple[float, float]] = []
        column = 0
        for param in self.params:
            if param.is_categorical:
                values = param.to_values()
                self._lookup.append({freeze(v): i for i, v in enumerate(values)})
                self._bounds.append((0.0, 1.0))
                width = len(values)
            else:
                self._lookup.append(None)
                self._bounds.append(_numeric_bounds(param))
                width = 1
            self._slots.append((column, width))
            column += width
        self.width = column

    @property
    def continuous(self) -> list[int]:
        return [i for i, param in enumerate(self.params) if param.is_continuous]

    def encode(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One float64 row per point, filled a column at a time (1,000 points in about 1 ms)."""
        out = np.zeros((len(points), self.width))
        for pos, name in enumerate(self.names):
            column, _ = self._slots[pos]
            values = [point.get(name) for point in points]
            lookup = self._lookup[pos]
            if lookup is not None:
                hits = [(row, lookup.get(freeze(value))) for row, value in enumerate(values)]
                rows = [row for row, hit in hits if hit is not None]
                out[rows, [column + hit for _, hit in hits if hit is not None]] = 1.0
                continue
            low, high = self._bounds[pos]
            numbers = np.array([float(v) if isinstance(v, int | float) else low for v in values])
            out[:, column] = 0.0 if high == low else (numbers - low) / (high - low)
        return out

    def sample(self, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
        columns = [param.sample(rng, n) for param in self.params]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]


def _numeric_bounds(param: MatrixParam) -> tuple[float, float]:
    if param.kind == "uniform":
        return float(param.spec.low), float(param.spec.high)
    values = [float(v) for v in param.to_values()]
    return min(values), max(values)


def acquisition(
    utility: UtilityFunctionConfig, mu: np.ndarray, sigma: np.ndarray, best: float
) -> np.ndarray:
    """Scores to maximise; observations are already oriented so that higher is better."""
    sigma = np.maximum(sigma, 1e-12)
    if utility.acquisition_function == "ucb":
        return mu + float(utility.kappa or 0.0) * sigma
    improvement = mu - best - float(utility.eps or 0.0)
    z = improvement / sigma
    if utility.acquisition_function == "ei":
        return improvement * norm.cdf(z) + sigma * norm.pdf(z)
    return norm.cdf(z)


def _kernel(utility: UtilityFunctionConfig) -> Kernel:
    gp = utility.gaussian_process
    if gp.kernel == "rbf":
        return RBF(length_scale=gp.length_scale)
    return Matern(length_scale=gp.length_scale, nu=gp.nu)


def fit_gp(
    x: np.ndarray, y: np.ndarray, utility: UtilityFunctionConfig, seed: int
) -> GaussianProcessRegressor:
    """Fit kernel hyperparameters on a bounded subset (the cost is cubic), then condition on all."""
    restarts = utility.gaussian_process.n_restarts_optimizer
    subset = np.linspace(0, len(y) - 1, min(len(y), _FIT_SUBSET)).round().astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tuned = GaussianProcessRegressor(
            kernel=_kernel(utility),
            alpha=1e-6,
            normalize_y=True,
            n_restarts_optimizer=restarts,
            random_state=seed % 2**32,
        ).fit(x[subset], y[subset])
    if len(subset) == len(y):
        return tuned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tuned values at a bound
        return GaussianProcessRegressor(
            kernel=tuned.kernel_, alpha=1e-6, normalize_y=True, optimizer=_keep_hyperparameters
        ).fit(x, y)


def _keep_hyperparameters(
    _objective: Any,
    theta: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, float]:
    """An sklearn GP optimizer that keeps the given hyperparameters without evaluating them.

    With `optimizer=None` sklearn still computes the log marginal likelihood, i.e. a second
    kernel matrix and Cholesky over all observations (about 14 ms at 1,000) that nothing reads.
    """
    del bounds  # part of the optimizer signature: sklearn passes it by name
    return theta, math.nan


@cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()  # after numpy and scipy are loaded, so it sees their BLAS


class BayesianOptimization:
    def __init__(self, matrix: Mapping[str, MatrixParam], config: BOConfig, seed: int) -> None:
        self.matrix = matrix
        self.config = config
        self.seed = seed
        self.space = Space(matrix)
        self.initial = RandomSearch(matrix, config.n_initial_trials, derive_seed(seed, 0))

    def index_of(self, iteration: int) -> int:
        """Iteration 0 holds the initial trials; iteration j >= 1 holds one suggestion."""
        return self.initial.total + iteration - 1

    def suggest(self, history: Sequence[Trial], limit: int | None = None) -> SuggestResult:
        n_iterations = self.config.n_iterations
        first = self.initial.suggest(history, limit)
        if first.suggestions:
            done = first.finished and n_iterations == 0
            return SuggestResult(first.suggestions, iteration=0, finished=done)
        existing = {trial.index for trial in history}
        for iteration in range(1, n_iterations + 1):
            if self.index_of(iteration) in existing:
                continue
            if any(not trial.is_done for trial in history):
                return SuggestResult((), iteration=iteration - 1, waiting=True)
            params = self.propose(history, iteration)
            if params is None:  # every point of the space has been tried
                return SuggestResult((), iteration=iteration - 1, finished=True)
            suggestion = Suggestion(self.index_of(iteration), params, iteration)
            return SuggestResult((suggestion,), iteration, finished=iteration == n_iterations)
        last = max((t.iteration for t in history), default=0)
        return SuggestResult((), iteration=last, finished=True)

    def propose(self, history: Sequence[Trial], iteration: int) -> dict[str, Any] | None:
        """The unobserved point with the best acquisition, or None when none is left."""
        with _blas_threads().limit(limits=1, user_api="blas"):
            return self._propose(history, iteration)

    def _propose(self, history: Sequence[Trial], iteration: int) -> dict[str, Any] | None:
        names = self.space.names
        rng = np.random.default_rng(derive_seed(self.seed, 1000 + iteration))
        seen = {params_key(t.params, names) for t in history}
        candidates = self._candidates(rng, seen)
        if not candidates:
            return None
        observed = [t for t in history if t.metric is not None and math.isfinite(t.metric)]
        if len(observed) < 2:  # nothing to model yet (failed trials): a seeded random point
            return candidates[0]
        sign = 1.0 if self.config.metric.optimization == "maximize" else -1.0
        x = self.space.encode([t.params for t in observed])
        y = np.array([sign * float(t.metric or 0.0) for t in observed])
        utility = self.config.utility_function
        gp = fit_gp(x, y, utility, derive_seed(self.seed, 2000 + iteration))
        mu, sigma = gp.predict(self.space.encode(candidates), return_std=True)
        scores = acquisition(utility, mu, sigma, float(y.max()))
        best = int(np.argmax(scores))
        return self._refine(gp, candidates[best], float(scores[best]), y, rng, seen)

    def _candidates(self, rng: np.random.Generator, seen: set[tuple[Any, ...]]) -> list[dict]:
        utility = self.config.utility_function
        points = self.space.sample(rng, utility.n_warmup or DEFAULT_CANDIDATES)
        if all(p.is_enumerable for p in self.space.params):
            grid = GridSearch(self.matrix)
            if grid.space_size <= _ENUMERATE_UP_TO:
                points.extend(s.params for s in grid.iter_suggestions())
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for point in points:
            key = params_key(point, self.space.names)
            if key not in seen:
                unique.setdefault(key, point)
        return list(unique.values())

    def _refine(
        self,
        gp: GaussianProcessRegressor,
        point: dict[str, Any],
        score: float,
        y: np.ndarray,
        rng: np.random.Generator,
        seen: set[tuple[Any, ...]],
    ) -> dict[str, Any]:
        """Hill-climb the continuous params with shrinking Gaussian steps (discrete ones stay).

        Each round scores its samples in one predict call; the rounds themselves are sequential
        because each one starts from the best point so far.
        """
        continuous = self.space.continuous
        rounds = self.config.utility_function.n_iter
        rounds = DEFAULT_REFINEMENTS if rounds is None else rounds
        if not continuous:
            return point
        names = [self.space.names[pos] for pos in continuous]
        lows = np.array([self.space.params[pos].spec.low for pos in continuous], dtype=float)
        highs = np.array([self.space.params[pos].spec.high for pos in continuous], dtype=float)
        for step in range(rounds):
            start = np.array([point[name] for name in names], dtype=float)
            widths = (highs - lows) * 0.1 / (step + 1)
            # Drawn sample by sample, param by param: the same stream as one scalar draw each.
            steps = rng.normal(0.0, widths, size=(_REFINE_SAMPLES, len(names)))
            moves = np.clip(start + steps, lows, highs).tolist()
            trials = [point | dict(zip(names, move, strict=True)) for move in moves]
            trials = [t for t in trials if params_key(t, self.space.names) not in seen]
            if not trials:
                continue
            mu, sigma = gp.predict(self.space.encode(trials), return_std=True)
            scores = acquisition(self.config.utility_function, mu, sigma, float(y.max()))
            best = int(np.argmax(scores))
            if scores[best] > score:
                point, score = trials[best], float(scores[best])
        return point

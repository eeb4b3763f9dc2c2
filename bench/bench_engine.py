"""Sweep engine figures, run by hand: `.venv/bin/python bench/bench_engine.py`; no time asserts.

`--only bo --repeat 20` runs just the BO cases and prints the median and minimum over 20 calls.
CPU time is printed beside wall time: on a shared machine it is the figure to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from app.logic.hptuning import parse_hptuning
from app.logic.search import Trial, suggest
from app.logic.search.bo import BayesianOptimization
from app.logic.search.grid import GridSearch
from app.logic.search.random import RandomSearch

GRID_100K = {f"p{i}": {"range": "0:10:1"} for i in range(5)}  # 10**5 points
DISCRETE_1M = {f"p{i}": {"linspace": "0:1:10"} for i in range(6)}  # 10**6 points
MIXED = {
    "lr": {"loguniform": "-7:0"},
    "dropout": {"uniform": "0:0.5"},
    "act": {"values": ["relu", "tanh", "gelu"]},
}
BO_MATRIX = {"lr": {"uniform": "0:1"}, "layers": {"range": "1:9:1"}, "act": {"values": ["a", "b"]}}


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(f"{label:<58} {1000 * wall:9.1f} ms  (cpu {1000 * cpu:.1f} ms)")
    return out


def repeated(label: str, fn: Callable[[], Any], repeat: int) -> None:
    """Median and minimum of `repeat` calls, wall and CPU, after the first (timed) call."""
    timed(f"{label}, first call", fn)
    walls, cpus = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(1000 * (time.perf_counter() - start))
        cpus.append(1000 * (time.process_time() - start_cpu))
    print(
        f"{label + f', {repeat} more':<58} wall median {statistics.median(walls):.1f} "
        f"min {min(walls):.1f} ms; cpu median {statistics.median(cpus):.1f} "
        f"min {min(cpus):.1f} ms"
    )


def peak_kib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024


def bench_grid() -> None:
    config = parse_hptuning({"matrix": GRID_100K, "grid_search": {"n_experiments": 100_000}})
    result = timed("grid: suggest all 100,000 points", lambda: suggest(config, seed=0, history=[]))
    print(f"{'':<58} {len(result.suggestions):>9} suggestions")
    truncated = parse_hptuning({"matrix": GRID_100K, "grid_search": {"n_experiments": 1000}})
    timed(
        "grid: 100,000-point space truncated to 1,000",
        lambda: suggest(truncated, seed=0, history=[]),
    )
    engine = GridSearch(config.matrix)
    timed(
        "grid: batch of 1,000 at index 99,000", lambda: list(engine.iter_suggestions(99_000, 1000))
    )


def bench_random() -> None:
    enumerable = parse_hptuning({"matrix": DISCRETE_1M, "random_search": {"n_experiments": 10_000}})
    timed(
        "random: 10,000 of a 1,000,000-point discrete space",
        lambda: suggest(enumerable, seed=1, history=[]),
    )
    mixed = parse_hptuning({"matrix": MIXED, "random_search": {"n_experiments": 10_000}})
    timed("random: 10,000 with continuous params", lambda: suggest(mixed, seed=1, history=[]))
    engine = RandomSearch(mixed.matrix, 10_000, 1)
    timed(
        "random: batch of 1,000 at index 9,000 (replays stream)",
        lambda: list(engine.iter_suggestions(9000, 1000)),
    )


def bench_bo(repeat: int) -> None:
    config = parse_hptuning(
        {
            "matrix": BO_MATRIX,
            "bo": {"n_initial_trials": 1000, "n_iterations": 5, "metric": {"name": "score"}},
        }
    )
    rng = np.random.default_rng(0)
    first = suggest(config, seed=2, history=[]).suggestions
    history = [
        Trial(s.index, s.params, "succeeded", float(rng.normal()) - (s.params["lr"] - 0.3) ** 2, 0)
        for s in first
    ]
    engine = BayesianOptimization(config.matrix, config.bo, 2)  # type: ignore[arg-type]
    repeated(
        "bo: one suggestion over 1,000 observations", lambda: engine.propose(history, 1), repeat
    )
    repeated(
        "bo: one suggestion over 20 observations", lambda: engine.propose(history[:20], 1), repeat
    )


def bench_memory() -> None:
    print("memory (tracemalloc peak) for n suggestions out of a fixed space:")
    grid = GridSearch(parse_hptuning({"matrix": DISCRETE_1M}).matrix)
    rand = RandomSearch(
        parse_hptuning({"matrix": DISCRETE_1M, "random_search": {"n_experiments": 10**6}}).matrix,
        10**6,
        3,
    )
    for n in (1_000, 10_000, 100_000):
        g = peak_kib(lambda n=n: list(grid.iter_suggestions(0, n)))
        r = peak_kib(lambda n=n: list(rand.iter_suggestions(0, n)))
        g_stream = peak_kib(lambda n=n: sum(1 for _ in grid.iter_suggestions(0, n)))
        print(
            f"  n={n:>7}: grid {g:9.0f} KiB, random {r:9.0f} KiB, grid streamed {g_stream:6.0f} KiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("grid", "random", "bo", "memory"), action="append")
    parser.add_argument("--repeat", type=int, default=5, help="BO calls after the first one")
    args = parser.parse_args()
    chosen = set(args.only or ("grid", "random", "bo", "memory"))
    if "grid" in chosen:
        bench_grid()
    if "random" in chosen:
        bench_random()
    if "bo" in chosen:
        bench_bo(args.repeat)
    if "memory" in chosen:
        bench_memory()


if __name__ == "__main__":
    main()

"""Overhead of `tracking.log_metrics` in the training loop (target: at most 5 µs per call).

Measured in this thread's CPU time (time.thread_time): on a shared, overloaded machine the wall
clock mostly measures waiting for a core. The cost of an empty loop iteration is printed beside
it as the machine's yardstick. The run's sender thread is live and talks to a real plx when
PLX_BENCH_URL and PLX_BENCH_TOKEN are set (the measured loop then competes with it for the GIL,
as in training); otherwise it points at a closed port, so the sender retries in the background.

    python clients/python/bench/bench_log_metrics.py [--calls 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

from plx_client import Client, tracking


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--project", default="bench")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    url, token = os.environ.get("PLX_BENCH_URL"), os.environ.get("PLX_BENCH_TOKEN")
    if url and token:
        run = tracking.init(args.project, url=url, token=token)
        target = url
    else:
        # No server: a Run that cannot deliver (the sender backs off in its thread).
        client = Client("http://127.0.0.1:9", "none", username="bench")
        run = tracking.Run(client, "bench/bench", 1, managed=True, max_buffer=10**8)
        target = "no server (sender retrying)"
    per_call, direct, empty, wall = [], [], [], []
    step = 0
    clock = time.thread_time
    for _ in range(args.repeat):
        start = clock()
        for _ in range(args.calls):
            pass
        empty.append((clock() - start) / args.calls * 1e6)
        start, wall_start = clock(), time.perf_counter()
        for _ in range(args.calls):
            tracking.log_metrics(step=step, loss=0.5, acc=0.9)
            step += 1
        per_call.append((clock() - start) / args.calls * 1e6)
        wall.append((time.perf_counter() - wall_start) / args.calls * 1e6)
        start = clock()
        for _ in range(args.calls):
            run.log_metrics(step, loss=0.5, acc=0.9)
            step += 1
        direct.append((clock() - start) / args.calls * 1e6)
    print(f"target: {target}; python {sys.version.split()[0]}; {args.calls} calls x {args.repeat}")
    print(
        f"tracking.log_metrics(step, loss, acc): median {statistics.median(per_call):.2f} µs, "
        f"max {max(per_call):.2f} µs per call"
    )
    print(f"  (wall clock: median {statistics.median(wall):.2f} µs; load {os.getloadavg()[0]:.1f})")
    print(
        f"Run.log_metrics(step, loss, acc):      median {statistics.median(direct):.2f} µs, "
        f"max {max(direct):.2f} µs per call"
    )
    print(f"empty loop iteration:                  median {statistics.median(empty):.3f} µs")
    if url and token:
        start = time.perf_counter()
        tracking.finish()
        print(f"finish() flushed {run.stored} points in {time.perf_counter() - start:.1f} s")
    else:
        run._closed = True  # nothing to flush to
    return 0 if statistics.median(per_call) <= 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""KubernetesRuntime against the fake API server (tests/k8s/fake_apiserver.py), by hand:

    .venv/bin/python bench/bench_k8s.py [--workloads 1000] [--events 100000]

Prints: pods created per second through `start()` (real client, real HTTP, no kubelet), watch
events per second applied to the runtime's cache, and the memory the runtime holds while
100,000 events stream through it (it should stay flat: the cache keeps objects, not events).
Server and runtime share one process and one event loop, so figures are for both together.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes_asyncio.client import ApiClient, Configuration

from app.k8s.manifests import object_name
from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import WorkloadSpec
from tests.k8s.fake_apiserver import FakeApiServer

NAMESPACE = "bench"


def spec(i: int) -> WorkloadSpec:
    return WorkloadSpec(
        key=f"job-{i}", kind="job", run_id=i, uuid=f"{i:032x}",
        unique_name=f"root.bench.jobs.{i}", username="root", project="bench",
        command="python train.py --epochs 10", image="python:3.11-slim",
        env={"PLX_JOB_ID": str(i), "PLX_PROJECT": "bench"},
        outputs_path=f"/plx/outputs/root/bench/jobs/{i}",
    )


async def create_pods(rt: KubernetesRuntime, count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await rt.start(spec(i))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def stream_events(api: FakeApiServer, rt: KubernetesRuntime, names: list[str],
                        count: int) -> float:
    """Modify pods round-robin on the server; time until the runtime applied every event."""
    target = rt.stats["events"] + count
    started = time.perf_counter()
    for i in range(count):
        name = names[i % len(names)]
        api.update("pods", NAMESPACE, name,
                   lambda pod, i=i: pod["metadata"].setdefault("annotations", {})
                   .__setitem__("bench/tick", str(i)))
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the server write and the runtime read
    while rt.stats["events"] < target:
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def runtime_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still alive that were allocated with app/k8s code on the stack."""
    mine = snapshot.filter_traces([tracemalloc.Filter(True, "*/app/k8s/*", all_frames=True)])
    return sum(stat.size for stat in mine.statistics("filename"))


async def main(workloads: int, events: int, concurrency: int) -> None:
    api = FakeApiServer(history=1000)
    await api.start()
    client = ApiClient(configuration=Configuration(host=api.host))
    client.configuration.connection_pool_maxsize = concurrency
    rt = KubernetesRuntime(namespace=NAMESPACE, api_client=client, resync_seconds=3600)
    await rt.setup()
    try:
        seconds = await create_pods(rt, workloads, concurrency)
        print(f"start(): {workloads} pods in {seconds:.2f}s = {workloads / seconds:,.0f} pods/s"
              f" (concurrency {concurrency})")
        names = [object_name(spec(i)) for i in range(workloads)]
        while rt.stats["events"] < workloads:  # the ADDED events of our own creates
            await asyncio.sleep(0.01)

        warm = min(events, 20_000)
        seconds = await stream_events(api, rt, names, warm)
        print(f"watch: {warm:,} events in {seconds:.2f}s = {warm / seconds:,.0f} events/s")

        gc.collect()
        tracemalloc.start(25)
        checkpoints = []
        for _ in range(4):
            seconds = await stream_events(api, rt, names, events // 4)
            gc.collect()
            checkpoints.append(runtime_bytes(tracemalloc.take_snapshot()))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures = ", ".join(f"{b / 2**20:.2f}" for b in checkpoints)
        print(f"memory over {events:,} events: alive allocations made by app/k8s after each "
              f"quarter: {figures} MiB (cache of {len(await rt.list_workloads())} workloads); "
              f"process peak under tracemalloc {peak / 2**20:.1f} MiB (server included)")
    finally:
        await rt.aclose()
        await client.close()
        await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.workloads, args.events, args.concurrency))

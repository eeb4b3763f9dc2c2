"""KubernetesRuntime end to end: the real client against the fake API server and kubelet."""

from __future__ import annotations

import pytest

from app.k8s.manifests import KEY_LABEL, MANAGED_SELECTOR, object_name, safe_label_value
from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import Resources, RuntimeError_
from tests.k8s.conftest import NAMESPACE, make_spec, wait_for, wait_status
from tests.k8s.fake_apiserver import FakeApiServer, PodScript


def pods_of(api: FakeApiServer, key: str) -> list[dict]:
    return api.list("pods", NAMESPACE, f"{KEY_LABEL}={safe_label_value(key)}")


async def test_job_lifecycle_seen_through_the_watch(runtime, kubelet, notified):
    spec = make_spec("job-1")
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    first = await runtime.start(spec)
    assert first.key == "job-1" and first.status in ("scheduled", "building")
    running = await wait_status(runtime, "job-1", "running")
    assert running.details["pod"] == object_name(spec)
    assert running.details["node"] == "fake-node-1"
    assert running.started_at is not None
    kubelet.finish(object_name(spec), 0)
    done = await wait_status(runtime, "job-1", "succeeded")
    assert done.exit_code == 0 and done.done and done.finished_at is not None
    assert notified.count >= 3
    assert (await runtime.list_workloads())["job-1"].status == "succeeded"


async def test_exit_code_fails_with_message(runtime):
    await runtime.start(make_spec("job-2", run_id=2, command="echo hi; exit 3"))
    state = await wait_status(runtime, "job-2", "failed", "succeeded")
    assert state.status == "failed"
    assert state.exit_code == 3
    assert state.message == "exit code 3"


async def test_oom_killed(runtime):
    spec = make_spec("job-3", run_id=3, labels={"fake-kubelet/outcome": "oom"})
    await runtime.start(spec)
    state = await wait_status(runtime, "job-3", "failed", "succeeded")
    assert state.status == "failed" and state.exit_code == 137
    assert "OOMKilled" in state.message


async def test_unschedulable_is_a_warning_with_the_scheduler_message(runtime):
    spec = make_spec("job-4", run_id=4, resources=Resources(gpu_limits=8),
                     labels={"fake-kubelet/outcome": "unschedulable"})
    await runtime.start(spec)
    state = await wait_status(runtime, "job-4", "warning")
    assert "Unschedulable" in state.message and "Insufficient nvidia.com/gpu" in state.message
    assert not state.done


async def test_image_pull_back_off_is_building_with_the_reason(runtime):
    spec = make_spec("job-5", run_id=5, image="nope/missing:1",
                     labels={"fake-kubelet/outcome": "image-pull"})
    await runtime.start(spec)
    state = await wait_for(
        lambda: runtime.observe("job-5"),
        lambda s: s is not None and (s.message or "").startswith("ImagePullBackOff"),
    )
    assert state.status == "building"
    assert "nope/missing:1" in state.message


async def test_start_twice_adopts_the_existing_pod(runtime, fake_api, kubelet):
    spec = make_spec("job-6", run_id=6)
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-6", "running")
    again = await runtime.start(spec)
    assert again.status == "running"
    assert len(pods_of(fake_api, "job-6")) == 1
    assert sum(1 for method, path in fake_api.requests
               if method == "POST" and path.endswith("/pods")) == 2


async def test_stop_deletes_the_pod_and_reports_stopped(runtime, fake_api, kubelet):
    spec = make_spec("job-7", run_id=7)
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-7", "running")
    await runtime.stop("job-7", grace_seconds=5)
    await wait_for(lambda: _async(pods_of(fake_api, "job-7")), lambda pods: pods == [])
    state = await runtime.observe("job-7")
    assert state is not None and state.status == "stopped"
    delete = [p for m, p in fake_api.requests if m == "DELETE" and "/pods?" in p]
    assert delete and "gracePeriodSeconds=5" in delete[-1]
    await runtime.cleanup("job-7")
    assert await runtime.observe("job-7") is None


async def test_stop_of_a_finished_run_keeps_its_status(runtime):
    await runtime.start(make_spec("job-8", run_id=8))
    await wait_status(runtime, "job-8", "succeeded")
    await runtime.stop("job-8")
    assert (await runtime.observe("job-8")).status == "succeeded"


async def test_pod_deleted_behind_our_back_vanishes(runtime, fake_api, kubelet):
    spec = make_spec("job-9", run_id=9)
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-9", "running")
    fake_api.remove("pods", NAMESPACE, object_name(spec))
    await wait_for(lambda: runtime.observe("job-9"), lambda s: s is None)
    assert "job-9" not in await runtime.list_workloads()


async def test_events_missed_while_the_api_server_was_down_are_seen(runtime, fake_api, kubelet):
    spec = make_spec("job-10", run_id=10)
    name = object_name(spec)
    kubelet.script(name, PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-10", "running")
    await fake_api.stop()
    kubelet.finish(name, 4)  # happens while nobody can watch
    await wait_for(lambda: _async(fake_api.get("pods", NAMESPACE, name)["status"]["phase"]),
                   lambda phase: phase == "Failed")
    assert (await runtime.observe("job-10")).status == "running"  # stale, but answered
    with pytest.raises(RuntimeError_) as err:
        await runtime.start(make_spec("job-11", run_id=11))
    assert err.value.retryable
    await fake_api.start()
    state = await wait_status(runtime, "job-10", "failed")
    assert state.exit_code == 4
    await runtime.start(make_spec("job-11", run_id=11))
    await wait_status(runtime, "job-11", "succeeded")


async def test_a_410_gone_relists_and_sees_missed_events(runtime, fake_api, kubelet):
    spec = make_spec("job-12", run_id=12)
    name = object_name(spec)
    kubelet.script(name, PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-12", "running")
    relists = runtime.stats["relists"]
    fake_api.blackhole_watches()  # the next events never reach the runtime's watch
    kubelet.finish(name, 0)
    await wait_for(lambda: _async(fake_api.get("pods", NAMESPACE, name)["status"]["phase"]),
                   lambda phase: phase == "Succeeded")
    fake_api.expire_watches()
    await wait_status(runtime, "job-12", "succeeded", timeout=0.9)  # before the 1 s resync
    # Both watches (pods, deployments) were expired, and both relisted.
    assert runtime.stats["relists"] >= relists + 2 and runtime.stats["gone"] == 2


async def test_a_dropped_watch_is_healed(runtime, fake_api, kubelet):
    spec = make_spec("job-13", run_id=13)
    name = object_name(spec)
    kubelet.script(name, PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-13", "running")
    fake_api.drop_watches()
    kubelet.finish(name, 0)
    await wait_status(runtime, "job-13", "succeeded")


async def test_a_silent_watch_is_healed_by_the_periodic_resync(runtime, fake_api, kubelet):
    spec = make_spec("job-14", run_id=14)
    name = object_name(spec)
    kubelet.script(name, PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-14", "running")
    fake_api.blackhole_watches()
    kubelet.finish(name, 0)
    await wait_status(runtime, "job-14", "succeeded", timeout=3.0)


async def test_tensorboard_deployment_and_service(runtime, fake_api):
    spec = make_spec("tensorboard-1", run_id=21, kind="tensorboard", command=None,
                     image="tensorflow/tensorflow:2.16.1", ports=[6006])
    await runtime.start(spec)
    name = object_name(spec)
    assert fake_api.get("deployments", NAMESPACE, name) is not None
    service = fake_api.get("services", NAMESPACE, name)
    assert service["spec"]["ports"][0]["port"] == 6006
    assert service["spec"]["selector"] == {KEY_LABEL: "tensorboard-1"}
    state = await wait_status(runtime, "tensorboard-1", "running")
    assert state.url == f"http://{name}.{NAMESPACE}.svc.cluster.local:6006"
    await runtime.stop("tensorboard-1")
    await wait_for(lambda: _async(fake_api.list("pods", NAMESPACE, MANAGED_SELECTOR)),
                   lambda pods: pods == [])
    assert fake_api.get("deployments", NAMESPACE, name) is None
    assert fake_api.get("services", NAMESPACE, name) is None
    assert (await runtime.observe("tensorboard-1")).status == "stopped"


async def test_notebook_that_crashes_fails(runtime, kubelet):
    spec = make_spec("notebook-1", run_id=22, kind="notebook", command="jupyter lab",
                     labels={"fake-kubelet/outcome": "fail", "fake-kubelet/run-seconds": "0.05"})
    kubelet.run_seconds = 0.05
    await runtime.start(spec)
    state = await wait_status(runtime, "notebook-1", "failed")
    assert "CrashLoopBackOff" in state.message


async def test_build_runs_a_kaniko_pod(runtime, fake_api):
    spec = make_spec("build-1", run_id=31, kind="build", command=None, image=None,
                     dockerfile="FROM python:3.11\nRUN pip install numpy\n",
                     destination_image="root_quick-start_1:abc", code_reference="c0ffee")
    await runtime.start(spec)
    pod = fake_api.get("pods", NAMESPACE, object_name(spec))
    main = pod["spec"]["containers"][0]
    assert main["image"].startswith("gcr.io/kaniko-project/executor")
    assert "--destination=registry.plx.svc:5000/root_quick-start_1:abc" in main["args"]
    init = pod["spec"]["initContainers"][0]
    assert {"name": "PLX_DOCKERFILE", "value": spec.dockerfile} in init["env"]
    assert "repo/download?commit=c0ffee" in init["args"][0]
    await wait_status(runtime, "build-1", "succeeded")


async def test_distributed_replicas_get_a_pod_and_a_service_each(runtime, fake_api):
    keys = []
    for role, index in (("master", 0), ("worker", 0), ("worker", 1), ("ps", 0)):
        spec = make_spec(f"experiment-40-{role}-{index}", run_id=40, kind="experiment",
                         role=role, replica_index=index, ports=[2222])
        await runtime.start(spec)
        keys.append(spec.key)
    names = {p["metadata"]["name"] for p in fake_api.list("pods", NAMESPACE, MANAGED_SELECTOR)}
    uuid = f"{40:032x}"
    assert names == {f"plxjob-{r}-{uuid}" for r in ("master0", "worker0", "worker1", "ps0")}
    services = fake_api.list("services", NAMESPACE, MANAGED_SELECTOR)
    assert {s["metadata"]["name"] for s in services} == names
    assert all(s["spec"]["clusterIP"] == "None" for s in services)
    for key in keys:
        await wait_status(runtime, key, "succeeded")
    await runtime.cleanup(keys[0])
    assert len(fake_api.list("services", NAMESPACE, MANAGED_SELECTOR)) == 3


async def test_read_logs_of_the_main_container(runtime, kubelet):
    spec = make_spec("job-15", run_id=15, command="python -c 'print(1)'")
    kubelet.script(object_name(spec), PodScript(outcome="succeed", logs="1\nepoch 2 done\n"))
    assert await runtime.read_logs("job-15") is None
    await runtime.start(spec)
    await wait_status(runtime, "job-15", "succeeded")
    assert await runtime.read_logs("job-15") == "1\nepoch 2 done\n"


async def test_forbidden_namespace_is_not_retryable(fake_api, api_client):
    fake_api.forbidden_namespaces.add("locked")
    rt = KubernetesRuntime(namespace="locked", api_client=api_client)
    with pytest.raises(RuntimeError_) as err:
        await rt.start(make_spec("job-16", run_id=16))
    assert not err.value.retryable
    assert "forbidden" in err.value.message and "locked" in err.value.message
    with pytest.raises(RuntimeError_) as err:
        await rt.setup()
    assert not err.value.retryable
    await rt.aclose()


async def test_server_errors_are_retryable(runtime, fake_api):
    fake_api.fail_next(1, 503, method="POST")
    with pytest.raises(RuntimeError_) as err:
        await runtime.start(make_spec("job-17", run_id=17))
    assert err.value.retryable and "503" in err.value.message
    await runtime.start(make_spec("job-17", run_id=17))
    await wait_status(runtime, "job-17", "succeeded")


async def test_bad_input_fails_before_any_request(runtime, fake_api):
    before = len(fake_api.requests)
    with pytest.raises(RuntimeError_) as err:
        await runtime.start(make_spec("job-18", run_id=18, resources=Resources(cpu_limits="lots")))
    assert not err.value.retryable and "cpu" in err.value.message and "lots" in err.value.message
    assert len(fake_api.requests) == before


async def test_setup_with_the_api_down_answers_retryable_until_listed(fake_api, api_client):
    await fake_api.stop()
    rt = KubernetesRuntime(namespace=NAMESPACE, api_client=api_client, resync_seconds=1.0)
    await rt.setup()
    with pytest.raises(RuntimeError_) as err:
        await rt.observe("job-19")
    assert err.value.retryable
    await fake_api.start()

    async def listed() -> dict | None:
        try:
            return await rt.list_workloads()
        except RuntimeError_:
            return None

    assert await wait_for(listed, lambda value: value is not None, timeout=8.0) == {}
    await rt.aclose()


async def test_a_restarted_runtime_adopts_existing_pods(runtime, fake_api, api_client, kubelet):
    spec = make_spec("job-20", run_id=20)
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    await runtime.start(spec)
    await wait_status(runtime, "job-20", "running")
    second = KubernetesRuntime(namespace=NAMESPACE, api_client=api_client)
    await second.setup()
    assert (await second.observe("job-20")).status == "running"
    assert list(await second.list_workloads()) == ["job-20"]
    await second.aclose()


async def _async(value):
    return value


async def test_the_api_session_skips_netrc_unless_a_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.k8s.config import PROXY_VARIABLES, new_api_client

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    api = await new_api_client(host="http://127.0.0.1:9")
    try:
        # aiohttp looks up ~/.netrc in a worker thread on every request when it trusts the env.
        assert api.rest_client.pool_manager.trust_env is False
    finally:
        await api.close()
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    api = await new_api_client(host="http://127.0.0.1:9")
    try:
        assert api.rest_client.pool_manager.trust_env is True  # the proxy is still honoured
    finally:
        await api.close()

"""Pure manifest builders, checked against the client's own models (serialize, deserialize)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiClient, V1Deployment, V1Pod, V1Service

from app.k8s.manifests import (
    GPU_RESOURCE,
    KEY_LABEL,
    MANAGED_BY_LABEL,
    NOTEBOOK_SNAPSHOT_EXCLUDE,
    NOTEBOOK_SNAPSHOT_SCRIPT,
    NOTEBOOK_SNAPSHOT_TIMEOUT,
    ManifestOptions,
    build_manifests,
    destination,
    object_name,
    safe_label_value,
)
from app.runtimes.base import Resources, RuntimeError_
from app.services.plugins import SNAPSHOT_EXCLUDE
from tests.k8s.conftest import make_spec

OPTIONS = ManifestOptions(namespace="plx", registry="registry.local:5000")
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"


@pytest.fixture
async def client():
    async with ApiClient() as api:
        yield api


def roundtrip(api: ApiClient, obj, model: str):
    """Serialize like the client sends it, then read it back as the API's model."""
    data = api.sanitize_for_serialization(obj)
    back = api.deserialize(SimpleNamespace(data=json.dumps(data)), model)
    assert api.sanitize_for_serialization(back) == data
    return data, back


def experiment_spec(**overrides):
    values = {
        "kind": "experiment", "role": "worker", "replica_index": 1, "run_id": 17,
        "unique_name": "root.quick-start.2.17", "group_id": 2,
        "resources": Resources(cpu_requests=0.5, cpu_limits=2, memory_requests=256,
                            memory_limits=1024, gpu_limits=1),
        "node_selector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule",
                      "tolerationSeconds": 60}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
        "secret_refs": ["aws-creds"], "configmap_refs": ["settings"],
        "env": {"PLX_EXPERIMENT_ID": "17", "POLYAXON_IN_CLUSTER": "true"},
    }
    values.update(overrides)
    return make_spec("experiment-17-worker-1", **values)


async def test_experiment_pod_manifest(client):
    spec = experiment_spec()
    manifests = build_manifests(spec, OPTIONS)
    assert manifests.services == [] and manifests.deployments == []
    data, pod = roundtrip(client, manifests.pods[0], "V1Pod")
    assert isinstance(pod, V1Pod) and data["kind"] == "Pod" and data["apiVersion"] == "v1"
    assert pod.metadata.name == f"plxjob-worker1-{17:032x}" == object_name(spec)
    assert pod.metadata.namespace == "plx"
    assert pod.spec.restart_policy == "Never"
    main = pod.spec.containers[0]
    assert main.name == "polyaxon-experiment-job" and main.image == "python:3.11-slim"
    assert main.command == ["/bin/bash", "-c"] and main.args == ["python train.py"]
    assert {(e.name, e.value) for e in main.env} == set(spec.env.items())
    assert main.env_from[0].secret_ref.name == "aws-creds"
    assert main.env_from[1].config_map_ref.name == "settings"
    assert data["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi", GPU_RESOURCE: "1"},
    }
    assert pod.spec.node_selector == {"pool": "gpu"}
    assert pod.spec.tolerations[0].toleration_seconds == 60
    terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert terms.node_selector_terms[0].match_expressions[0].values == ["a", "b"]
    init = pod.spec.init_containers[0]
    assert init.name == "polyaxon-job-init"
    assert "mkdir -p /plx/outputs/root/quick-start/jobs/17" in init.args[0]
    assert main.volume_mounts[0].mount_path == init.volume_mounts[0].mount_path
    labels = pod.metadata.labels
    assert labels["app"] == "polyaxon-experiment" and labels["task_type"] == "worker"
    assert labels["task_idx"] == "1" and labels["experiment_name"] == "root.quick-start.2.17"
    assert labels["experiment_group_id"] == "2" and labels["role"] == "polyaxon-workers"
    assert labels[MANAGED_BY_LABEL] == "plx" and labels[KEY_LABEL] == spec.key
    assert pod.metadata.annotations["plx/key"] == spec.key


async def test_outputs_on_a_shared_claim(client):
    """Issue 16.2: a run mounts only its own outputs of the claim (a subPath), never the whole
    data directory, where plx's database and every other run's files are."""
    options = ManifestOptions(outputs_claim="plx-outputs", outputs_root="/plx/outputs")
    data, _ = roundtrip(client, build_manifests(make_spec(), options).pods[0], "V1Pod")
    volume = data["spec"]["volumes"][0]
    assert volume["persistentVolumeClaim"] == {"claimName": "plx-outputs"}
    for container in (data["spec"]["containers"][0], data["spec"]["initContainers"][0]):
        (mount,) = container["volumeMounts"]
        assert mount == {
            "name": volume["name"],
            "mountPath": "/plx/outputs/root/quick-start/jobs/1",
            "subPath": "root/quick-start/jobs/1",
        }


async def test_a_tensorboard_mounts_the_outputs_it_reads_read_only(client):
    options = ManifestOptions(outputs_claim="plx-outputs", outputs_root="/plx/outputs")
    reads = ("/plx/outputs/runs/experiment/3/outputs", "/plx/outputs/runs/experiment/4/outputs")
    spec = make_spec(
        "tensorboard-9", kind="tensorboard", run_id=9, outputs_path="", read_only_paths=reads,
        command="tensorboard --logdir_spec 3:...,4:...", ports=[6006],
    )
    data, _ = roundtrip(client, build_manifests(spec, options).deployments[0], "V1Deployment")
    pod = data["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts == [
        {"name": "plx-outputs", "mountPath": path, "subPath": path.removeprefix("/plx/outputs/"),
         "readOnly": True}
        for path in reads
    ]
    # Outside the claim's root, or climbing out of it: refused before anything is created.
    for path in ("/etc/outputs", "/plx/outputs/../plx.db", "/plx/outputs"):
        bad = replace(spec, read_only_paths=(path,))
        with pytest.raises(RuntimeError_, match="not below"):
            build_manifests(bad, options)


async def test_runs_get_no_service_account_token(client):
    """Issue 16.2: the runs' pods have no API credentials (and their ServiceAccount no rights,
    deploy/)."""
    options = replace(OPTIONS, service_account="plx-run")
    specs = [
        experiment_spec(),
        make_spec("build-1", kind="build", run_id=1, dockerfile="FROM python:3.11",
                  destination_image="p:1"),
        make_spec("tensorboard-1", kind="tensorboard", run_id=1, ports=[6006]),
        make_spec("notebook-1", kind="notebook", run_id=1, command=None, ports=[8888]),
    ]
    for spec in specs:
        manifests = build_manifests(spec, options)
        pods = [p.spec for p in manifests.pods] + [d.spec.template.spec for d in
                                                     manifests.deployments]
        for pod in pods:
            assert pod.automount_service_account_token is False, spec.kind
            assert pod.service_account_name == "plx-run"


def test_refs_outside_the_operators_allow_list_are_refused():
    """The API refuses them at create time; a row stored before the list changed is refused
    again when its pod would be made."""
    options = replace(OPTIONS, allowed_secrets=frozenset({"aws-creds"}),
                      allowed_configmaps=frozenset({"settings"}))
    build_manifests(experiment_spec(), options)  # both allowed
    with pytest.raises(RuntimeError_, match="secret `plx-database`.*operator") as exc:
        build_manifests(experiment_spec(secret_refs=["plx-database"]), options)
    assert not exc.value.retryable
    with pytest.raises(RuntimeError_, match="config map `other`"):
        build_manifests(experiment_spec(configmap_refs=["other"]), options)
    with pytest.raises(RuntimeError_, match="secret `aws-creds`"):
        build_manifests(experiment_spec(), replace(options, allowed_secrets=frozenset()))


def test_plugins_serve_under_the_proxy_path_without_bind_all():
    spec = make_spec("tensorboard-1", kind="tensorboard", run_id=1, command=None, ports=[6006])
    (deployment,) = build_manifests(spec, OPTIONS).deployments
    command = deployment.spec.template.spec.containers[0].args[0]
    assert "--bind_all" not in command and "--path_prefix=" in command
    spec = make_spec("notebook-1", kind="notebook", run_id=1, command=None, ports=[8888])
    (deployment,) = build_manifests(spec, OPTIONS).deployments
    command = deployment.spec.template.spec.containers[0].args[0]
    assert "base_url=\"${PLX_PLUGIN_BASE_URL" in command and "token" not in command.lower()


def test_label_values_are_made_safe():
    long_name = "root." + "a-very-long-project-name" * 4 + ".17"
    spec = make_spec("job/with spaces:1", unique_name=long_name, username="root",
                     project="my project!")
    labels = build_manifests(spec, OPTIONS).pods[0].metadata.labels
    for key, value in labels.items():
        assert len(value) <= 63 and re.match(_LABEL_VALUE, value), (key, value)
    assert labels["job_name"] != long_name and labels["job_name"].startswith("root.a-very")
    # Different inputs never collapse onto one selector value.
    assert safe_label_value("a b") != safe_label_value("a-b")
    assert safe_label_value("ok.value_1") == "ok.value_1"
    assert safe_label_value("-x-") != "" and re.match(_LABEL_VALUE, safe_label_value("-x-"))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"resources": Resources(cpu_limits="lots")}, "Invalid cpu `lots`"),
        ({"resources": Resources(memory_limits=1.5)}, "memory"),
        ({"resources": Resources(cpu_requests=4, cpu_limits=1)}, "requests exceed limits"),
        ({"resources": Resources(gpu_limits=-1)}, "gpu"),
        ({"labels": {"team": "ml platform"}}, "Invalid value `ml platform` for label `team`"),
        ({"labels": {"bad key!": "x"}}, "Invalid label key"),
        ({"tolerations": [{"key": "x", "operatr": "Exists"}]}, "Unknown field"),
        ({"tolerations": [{"key": "x", "tolerationSeconds": "soon"}]}, "type int"),
        ({"node_selector": {"pool": 3}}, "type str"),
        ({"affinity": ["not", "a", "mapping"]}, "mapping"),
        ({"env": {"BAD NAME": "1"}}, "environment variable"),
        ({"secret_refs": ["Not_Valid"]}, "secret name"),
        ({"uuid": "not-a-uuid"}, "Invalid uuid"),
        ({"image": None}, "no image"),
        ({"command": None}, "no command"),
        ({"ports": [70000]}, "Invalid port"),
    ],
)
def test_bad_input_is_a_clear_non_retryable_error(overrides, fragment):
    with pytest.raises(RuntimeError_) as err:
        build_manifests(make_spec(**overrides), OPTIONS)
    assert not err.value.retryable
    assert fragment in err.value.message


async def test_distributed_replica_gets_a_headless_service(client):
    spec = experiment_spec(ports=[2222], role="master", replica_index=0)
    manifests = build_manifests(spec, OPTIONS)
    data, svc = roundtrip(client, manifests.services[0], "V1Service")
    assert isinstance(svc, V1Service)
    assert svc.metadata.name == manifests.pods[0].metadata.name == f"plxjob-master0-{17:032x}"
    assert svc.spec.cluster_ip == "None" and svc.spec.publish_not_ready_addresses
    assert svc.spec.selector == {KEY_LABEL: spec.key}
    assert data["spec"]["ports"] == [
        {"name": "port-2222", "port": 2222, "protocol": "TCP", "targetPort": 2222}
    ]
    assert manifests.pods[0].spec.containers[0].ports[0].container_port == 2222


async def test_tensorboard_is_a_deployment_and_a_service(client):
    spec = make_spec("tensorboard-3", kind="tensorboard", run_id=3, command=None, image=None)
    manifests = build_manifests(spec, OPTIONS)
    assert manifests.pods == []
    data, dep = roundtrip(client, manifests.deployments[0], "V1Deployment")
    assert isinstance(dep, V1Deployment) and data["apiVersion"] == "apps/v1"
    assert dep.spec.replicas == 1
    assert dep.spec.selector.match_labels == {KEY_LABEL: "tensorboard-3"}
    template_labels = dep.spec.template.metadata.labels
    assert template_labels["app"] == "polyaxon-tensorboard"
    assert template_labels["role"] == "polyaxon-dashboard"
    container = dep.spec.template.spec.containers[0]
    assert container.image == OPTIONS.tensorboard_image
    assert "tensorboard --logdir=/plx/outputs/root/quick-start/jobs/3 --port=6006" in (
        container.args[0]
    )
    assert container.readiness_probe.tcp_socket.port == 6006
    _, svc = roundtrip(client, manifests.services[0], "V1Service")
    assert svc.spec.ports[0].port == 6006 and svc.spec.cluster_ip is None
    assert manifests.url == f"http://plx-tensorboard-{3:032x}.plx.svc.cluster.local:6006"


def test_notebook_port_from_spec():
    spec = make_spec("notebook-4", kind="notebook", run_id=4, command=None, ports=[8899])
    manifests = build_manifests(spec, OPTIONS)
    args = manifests.deployments[0].spec.template.spec.containers[0].args[0]
    assert "jupyter notebook" in args and "--port=8899" in args
    assert manifests.url.endswith(":8899")


async def test_build_is_a_kaniko_pod(client):
    spec = make_spec("build-5", kind="build", run_id=5, command=None, image=None,
                     dockerfile="FROM ubuntu\n", destination_image="root_qs_1:5")
    data, pod = roundtrip(client, build_manifests(spec, OPTIONS).pods[0], "V1Pod")
    assert pod.metadata.name == f"plx-build-{5:032x}"
    assert pod.metadata.labels["app"] == "polyaxon-dockerizer"
    assert pod.spec.restart_policy == "Never"
    kaniko = pod.spec.containers[0]
    assert kaniko.command is None  # the executor image has no shell
    assert "--destination=registry.local:5000/root_qs_1:5" in kaniko.args
    assert "--context=dir:///workspace" in kaniko.args
    assert not any("docker.sock" in json.dumps(v) for v in data["spec"].get("volumes", []))


def test_build_destination_registry_rules():
    spec = make_spec(kind="build", destination_image="ghcr.io/acme/img:1", dockerfile="FROM x")
    assert destination(spec, "registry.local") == "ghcr.io/acme/img:1"
    spec = make_spec(kind="build", destination_image="acme/img:1", dockerfile="FROM x")
    assert destination(spec, "registry.local/") == "registry.local/acme/img:1"
    assert destination(spec, None) == "acme/img:1"
    with pytest.raises(RuntimeError_):
        build_manifests(make_spec(kind="build", dockerfile=None, destination_image="a"), OPTIONS)


def test_builders_are_deterministic():
    spec = experiment_spec(ports=[2222])
    first, second = build_manifests(spec, OPTIONS), build_manifests(spec, OPTIONS)
    assert first.pods[0].to_dict() == second.pods[0].to_dict()
    assert first.services[0].to_dict() == second.services[0].to_dict()


def dockerfile_build(**overrides):
    values = {"kind": "build", "run_id": 6, "command": None, "image": None,
              "dockerfile_path": "./docker/train.Dockerfile", "code_reference": "c0ffee",
              "destination_image": "root_qs_1:6"}
    values.update(overrides)
    return make_spec("build-6", **values)


async def test_build_from_a_dockerfile_of_the_code(client):
    _, pod = roundtrip(client, build_manifests(dockerfile_build(), OPTIONS).pods[0], "V1Pod")
    kaniko = pod.spec.containers[0]
    assert "--dockerfile=/workspace/docker/train.Dockerfile" in kaniko.args
    assert "--context=dir:///workspace" in kaniko.args
    init = pod.spec.init_containers[0]
    script = init.args[0]
    # The code version is unpacked first, then the Dockerfile must be in it; none is written.
    assert script.index("repo/download?commit=c0ffee") < script.index(
        "test -f /workspace/docker/train.Dockerfile"
    )
    assert "PLX_DOCKERFILE" not in script
    assert "PLX_DOCKERFILE" not in {e.name for e in init.env or []}


def test_build_context_is_a_directory_of_the_code():
    spec = dockerfile_build(dockerfile_path="Dockerfile", build_context="services/api/")
    kaniko = build_manifests(spec, OPTIONS).pods[0].spec.containers[0]
    assert "--dockerfile=/workspace/Dockerfile" in kaniko.args
    assert "--context=dir:///workspace/services/api" in kaniko.args


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"dockerfile_path": "/etc/passwd"}, "not absolute"),
        ({"dockerfile_path": "../other/Dockerfile"}, "`..` leaves the code"),
        ({"dockerfile_path": "docker/../../Dockerfile"}, "`..` leaves the code"),
        ({"dockerfile_path": "./"}, "names no file"),
        ({"dockerfile_path": "Docker\nfile"}, "expected a relative path"),
        ({"build_context": "/"}, "not absolute"),
        ({"build_context": "a/../.."}, "`..` leaves the code"),
        ({"code_reference": None}, "has no uploaded code"),
        ({"code_reference": "c0ffee; rm -rf /"}, "Invalid code version"),
    ],
)
def test_bad_dockerfile_paths_are_refused(overrides, fragment):
    with pytest.raises(RuntimeError_) as err:
        build_manifests(dockerfile_build(**overrides), OPTIONS)
    assert not err.value.retryable and fragment in err.value.message


async def test_notebook_works_in_the_projects_code(client):
    spec = make_spec("notebook-7", kind="notebook", run_id=7, command=None, image=None,
                     code_reference="c0ffee", ports=[8888],
                     env={"PLX_TOKEN": "run-token", "JUPYTER_TOKEN": "secret"})
    manifests = build_manifests(spec, OPTIONS)
    _, deployment = roundtrip(client, manifests.deployments[0], "V1Deployment")
    pod = deployment.spec.template.spec
    (init,) = pod.init_containers
    assert "repo/download?commit=c0ffee" in init.args[0]
    assert "chmod -R a+rwX /workspace" in init.args[0]
    main = pod.containers[0]
    assert main.image == OPTIONS.notebook_image and main.working_dir == "/workspace"
    assert "--notebook-dir=/workspace" in main.args[0] and "--port=8888" in main.args[0]
    assert "secret" not in main.args[0]  # the token is in the environment, not on the command
    assert ("JUPYTER_TOKEN", "secret") in [(e.name, e.value) for e in main.env]
    assert {m.mount_path for m in main.volume_mounts} >= {"/workspace"}
    assert manifests.url == f"http://plx-notebook-{7:032x}.plx.svc.cluster.local:8888"


async def test_notebook_uploads_its_workspace_before_it_stops(client):
    """preStop: a stdlib-only python3 script (tarfile + urllib) with the workspace, the upload
    path and its timeout as arguments; the pod's grace period leaves it time to finish."""
    spec = make_spec("notebook-7", kind="notebook", run_id=7, command=None, image=None,
                     code_reference="c0ffee", ports=[8888],
                     env={"PLX_TOKEN": "run-token", "PLX_API_URL": "http://plx:8000"})
    manifests = build_manifests(spec, OPTIONS)
    data, deployment = roundtrip(client, manifests.deployments[0], "V1Deployment")
    pod = deployment.spec.template.spec
    assert pod.termination_grace_period_seconds == NOTEBOOK_SNAPSHOT_TIMEOUT + 15 == 60
    main = pod.containers[0]
    command = main.lifecycle.pre_stop._exec.command
    assert main.lifecycle.post_start is None and main.lifecycle.pre_stop.http_get is None
    assert command == ["python3", "-c", NOTEBOOK_SNAPSHOT_SCRIPT, "/workspace",
                       "/api/v1/root/quick-start/notebook/7/repo/upload", "45"]
    # As the API server receives it (camelCase `exec`, `preStop`), nothing else in the hook.
    template = data["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == 60
    assert template["containers"][0]["lifecycle"] == {"preStop": {"exec": {"command": command}}}
    # The token stays in the environment, never on the hook's command line.
    assert "run-token" not in " ".join(command)
    script = command[2]
    compile(script, "<preStop>", "exec")
    imported = {name.strip() for name in script.splitlines()[0].removeprefix("import ").split(",")}
    assert imported == {"os", "signal", "sys", "tarfile", "tempfile", "urllib.request", "uuid"}
    assert "signal.alarm(timeout)" in script and script.rstrip().endswith("os._exit(0)")
    # The same exclusions as the local runtime's snapshot.
    assert set(NOTEBOOK_SNAPSHOT_EXCLUDE) == SNAPSHOT_EXCLUDE
    assert repr(NOTEBOOK_SNAPSHOT_EXCLUDE) in script


async def test_notebook_snapshot_timeout_sets_the_grace_period(client):
    spec = make_spec("notebook-7", kind="notebook", run_id=7, command=None, image=None,
                     ports=[8888])
    options = replace(OPTIONS, notebook_snapshot_timeout=100)
    _, deployment = roundtrip(client, build_manifests(spec, options).deployments[0],
                              "V1Deployment")
    pod = deployment.spec.template.spec
    assert pod.termination_grace_period_seconds == 115
    assert pod.containers[0].lifecycle.pre_stop._exec.command[-1] == "100"
    with pytest.raises(RuntimeError_, match="snapshot timeout"):
        build_manifests(spec, replace(OPTIONS, notebook_snapshot_timeout=0))


async def test_tensorboard_has_no_prestop_hook(client):
    spec = make_spec("tensorboard-3", kind="tensorboard", run_id=3, command=None, image=None)
    _, deployment = roundtrip(client, build_manifests(spec, OPTIONS).deployments[0],
                              "V1Deployment")
    pod = deployment.spec.template.spec
    assert pod.containers[0].lifecycle is None and pod.termination_grace_period_seconds is None

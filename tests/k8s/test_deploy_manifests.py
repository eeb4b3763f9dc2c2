"""The deploy files: every manifest is a valid object of the client's models, the probes and
env name what the app serves and reads, and the RBAC rules grant exactly what
app/k8s/runtime.py calls.

Checked: the kustomize base and its ingress overlay as plain YAML (always), as rendered by
`kubectl kustomize` (when kubectl is installed), and the Helm chart as rendered by the Helm
engine (when the `helm-python-sdk` package is installed: there is no helm binary here).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from app.config import Settings
from app.routers.health import router as health_router

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kustomize"
CHART = ROOT / "deploy" / "helm" / "plx"
RUNTIME = ROOT / "app" / "k8s" / "runtime.py"
NAMESPACE = "plx"
RUNS_NAMESPACE = "plx-runs"  # the kustomize base's; the chart's default is `<release ns>-runs`
# What lives in the runs' namespace (issue 16.2); everything else is in plx's.
IN_RUNS_NAMESPACE = {"Role", "RoleBinding", "NetworkPolicy"}

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
VERBS = {
    "list": "list", "read": "get", "create": "create", "delete_collection": "deletecollection",
    "delete": "delete", "patch": "patch", "replace": "update",
}
# Every variable of contract.md section 2 that a Kubernetes deployment must set.
REQUIRED_ENV = {"PLX_RUNTIME", "PLX_K8S_NAMESPACE", "PLX_API_URL", "PLX_DATABASE_URL",
                "PLX_DATA_DIR"}


# ------------------------------------------------------------------------------ what plx needs


def _api_methods(source: str) -> list[str]:
    return re.findall(r"\.((?:list|read|create|delete_collection|delete|patch|replace)_\w+)\b",
                      source)


def required_rules() -> dict[str, set[tuple[str, str, str]]]:
    """(apiGroup, resource, verb) by scope, from the client methods runtime.py calls; the
    listers of `_listers()` are also watched."""
    source = RUNTIME.read_text()
    tree = ast.parse(source)
    listers = next(
        node for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_listers"
    )
    watched = set(_api_methods(ast.get_source_segment(source, listers) or ""))
    needed: dict[str, set[tuple[str, str, str]]] = {"namespace": set(), "cluster": set()}
    for method in set(_api_methods(source)):
        if hasattr(k8s.CoreV1Api, method):
            group = ""
        elif hasattr(k8s.AppsV1Api, method):
            group = "apps"
        else:
            continue  # not an API call (e.g. a dict's method)
        action, _, rest = method.partition("_namespaced_") if "_namespaced_" in method else (
            method.split("_", 1)[0], "", method.split("_", 1)[1]
        )
        if action == "delete" and rest.startswith("collection"):
            action, rest = "delete_collection", rest.removeprefix("collection_")
        kind, *sub = rest.split("_")
        resource = "/".join([f"{kind}s", *sub])
        scope = "namespace" if "_namespaced_" in method else "cluster"
        needed[scope].add((group, resource, VERBS[action]))
        if method in watched:
            needed[scope].add((group, resource, "watch"))
    return needed


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_required_rules_are_read_from_the_runtime():
    needed = required_rules()
    assert ("", "pods", "watch") in needed["namespace"]
    assert ("", "pods/log", "get") in needed["namespace"]
    assert ("apps", "deployments", "deletecollection") in needed["namespace"]
    assert needed["cluster"] == {("", "nodes", "list")}


# ----------------------------------------------------------------------------- the documents


def _load(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization_docs(directory: Path) -> list[dict[str, Any]]:
    """The plain files of a kustomization, with what its `namespace:` does to them."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs += _kustomization_docs(path) if path.is_dir() else _load([path])
    namespace = spec.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            if namespace and subject["kind"] == "ServiceAccount":
                subject.setdefault("namespace", namespace)
    return docs


def _kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _helm_render() -> list[dict[str, Any]]:
    chart_module = pytest.importorskip(
        "helm_python.chart", reason="helm-python-sdk (the Helm engine) is not installed"
    )
    chart = chart_module.Chart.load(str(CHART))
    values = {"database": {"url": "postgresql+asyncpg://plx:secret@postgres/plx"},
              "ingress": {"enabled": True}}
    rendered = chart.render(values=values, name="plx", namespace=NAMESPACE)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


SOURCES = {
    "kustomize-base": lambda: _kustomization_docs(KUSTOMIZE / "base"),
    "kustomize-ingress": lambda: _kustomization_docs(KUSTOMIZE / "overlays" / "ingress"),
    "kubectl-kustomize-base": lambda: _kubectl_kustomize(KUSTOMIZE / "base"),
    "kubectl-kustomize-ingress": lambda: _kubectl_kustomize(KUSTOMIZE / "overlays" / "ingress"),
    "helm": _helm_render,
}


@pytest.fixture(params=list(SOURCES))
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if request.param.startswith("kubectl") and shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return SOURCES[request.param]()


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = _by_kind(docs, kind)
    return doc


# --------------------------------------------------------------------------------- the checks


async def test_every_manifest_is_a_valid_model_without_unknown_fields(docs):
    async with k8s.ApiClient() as api:
        for doc in docs:
            _check_model(api, doc)


def _check_model(api: k8s.ApiClient, doc: dict[str, Any]) -> None:
    model = f"V1{doc['kind']}"
    assert doc["apiVersion"].split("/")[-1] == "v1", doc["apiVersion"]
    # The models refuse a missing required field (client-side validation)...
    back = api.deserialize(SimpleNamespace(data=json.dumps(doc)), model)
    # ...but drop unknown ones silently: a round trip that loses a key names a typo.
    assert api.sanitize_for_serialization(back) == doc, f"{model} {doc['metadata']}"
    assert doc["metadata"]["name"]
    if doc["kind"] not in CLUSTER_SCOPED:  # Helm leaves it to `helm install --namespace`
        runs = doc["kind"] in IN_RUNS_NAMESPACE or doc["metadata"]["name"].endswith("-run")
        expected = RUNS_NAMESPACE if runs else NAMESPACE
        assert doc["metadata"].get("namespace", NAMESPACE) == expected, doc["metadata"]


def test_the_deployment_probes_env_and_image(docs):
    deployment = _one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    template = spec["template"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The probes ask what the app serves, on a port the container declares.
    paths = {route.path for route in health_router.routes}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    # The image the root Dockerfile builds: its `plx` command and port.
    dockerfile = (ROOT / "Dockerfile").read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert container["command"][:2] == ["plx", "server"] and "plx" in scripts
    assert f"EXPOSE {ports['http']}" in dockerfile
    assert container["command"][container["command"].index("--port") + 1] == str(ports["http"])
    env = {item["name"]: item for item in container["env"]}
    assert REQUIRED_ENV <= env.keys()
    settings = {f"PLX_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("PLX_")} <= settings
    assert env["PLX_RUNTIME"]["value"] == "kubernetes"
    secret = env["PLX_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"]
    assert "value" not in env["PLX_DATABASE_URL"]
    # The data dir is a volume that outlives the pod.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    data = volumes[mounts[env["PLX_DATA_DIR"]["value"]]]
    claim = data["persistentVolumeClaim"]["claimName"]
    assert claim in {pvc["metadata"]["name"] for pvc in _by_kind(docs, "PersistentVolumeClaim")}


def test_the_service_and_ingress_reach_the_server(docs):
    deployment = _one(docs, "Deployment")
    template = deployment["spec"]["template"]
    ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    service = _one(docs, "Service")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for ingress in _by_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_rbac_grants_exactly_what_the_runtime_calls(docs):
    needed = required_rules()
    deployment = _one(docs, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert account in {sa["metadata"]["name"] for sa in _by_kind(docs, "ServiceAccount")}
    for role_kind, binding_kind, scope in (
        ("Role", "RoleBinding", "namespace"), ("ClusterRole", "ClusterRoleBinding", "cluster"),
    ):
        role, binding = _one(docs, role_kind), _one(docs, binding_kind)
        assert granted(role["rules"]) == needed[scope], role_kind
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    # The runs go where the Role is: their own namespace, not plx's (issue 16.2).
    env = _env(deployment)
    role_namespace = _one(docs, "Role")["metadata"]["namespace"]
    assert env["PLX_K8S_NAMESPACE"]["value"] == role_namespace == RUNS_NAMESPACE
    assert deployment["metadata"].get("namespace", NAMESPACE) == NAMESPACE != role_namespace


# ------------------------------------------------------------------- isolation (issue 16.2)


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_runs_have_their_own_namespace_and_plx_no_rights_in_its_own(docs):
    deployment = _one(docs, "Deployment")
    runs = _env(deployment)["PLX_K8S_NAMESPACE"]["value"]
    assert runs != deployment["metadata"].get("namespace", NAMESPACE)
    namespaces = {d["metadata"]["name"] for d in _by_kind(docs, "Namespace")}
    assert runs in namespaces  # created with plx
    for binding in _by_kind(docs, "RoleBinding"):
        assert binding["metadata"]["namespace"] == runs
    # No rule anywhere reaches Secrets or ConfigMaps.
    for role in _by_kind(docs, "Role") + _by_kind(docs, "ClusterRole"):
        resources = {resource for _, resource, _ in granted(role["rules"])}
        assert resources <= {"pods", "pods/log", "services", "deployments", "nodes"}, resources
    # The API URL the runs call back is plx's Service in plx's namespace.
    url = _env(deployment)["PLX_API_URL"]["value"]
    service = _one(docs, "Service")["metadata"]["name"]
    assert url.startswith(f"http://{service}.") and f".{runs}." not in url


def test_the_runs_service_account_has_no_rights_and_no_token(docs):
    deployment = _one(docs, "Deployment")
    env = _env(deployment)
    name = env["PLX_K8S_SERVICE_ACCOUNT"]["value"]
    runs = env["PLX_K8S_NAMESPACE"]["value"]
    (account,) = [
        sa for sa in _by_kind(docs, "ServiceAccount")
        if sa["metadata"]["name"] == name and sa["metadata"].get("namespace") == runs
    ]
    assert account["automountServiceAccountToken"] is False
    for binding in _by_kind(docs, "RoleBinding") + _by_kind(docs, "ClusterRoleBinding"):
        assert all(subject["name"] != name for subject in binding["subjects"])
    assert name != deployment["spec"]["template"]["spec"]["serviceAccountName"]


def test_plugin_pods_accept_connections_from_plx_only(docs):
    from app.k8s.manifests import ManifestOptions, build_manifests
    from tests.k8s.conftest import make_spec

    deployment = _one(docs, "Deployment")
    runs = _env(deployment)["PLX_K8S_NAMESPACE"]["value"]
    (policy,) = _by_kind(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == runs
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    # It selects the tensorboard and notebook pods plx makes, and no run's pod.
    selector = spec["podSelector"]["matchLabels"]
    for kind in ("tensorboard", "notebook"):
        plugin = make_spec(f"{kind}-1", kind=kind, command=None, ports=[1])
        (made,) = build_manifests(plugin, ManifestOptions(namespace=runs)).deployments
        assert selector.items() <= made.spec.template.metadata.labels.items()
    job = build_manifests(make_spec(), ManifestOptions(namespace=runs)).pods[0]
    assert not selector.items() <= job.metadata.labels.items()
    # From plx's pods, in plx's namespace; nothing else.
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": deployment["metadata"].get("namespace", NAMESPACE)
    }
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert "ports" not in rule and "ipBlock" not in peer

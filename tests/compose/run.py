"""`make compose-test`: `docker compose up` proven in containers, then everything removed.

    python -m tests.compose.run [--keep] [--plain-only | --overlay-only]
    python -m tests.compose.run --throughput    (the scale-out figures; not run by CI)

--keep leaves the last stack up for a look (no cleanup); --plain-only skips the overlay
(`make compose-test-plain`); --overlay-only skips the plain stage.

Steps (each one logs what it does and how long it took):
1. the engine: Debian's docker.io, installed and started when absent (tests/compose/engine.py);
   Compose v2 from Debian's `docker-compose` package (see engine.py for why and how);
2. stand-in base images, built offline and cached by a hash of their recipe: no image registry
   can be reached, so `python`, `apache/airflow` and `postgres` are replaced (tests/compose/standins/);
3. an override file, generated from docker-compose.yml, swaps only those images: a build argument
   for each Dockerfile's base image, the `image:` of the postgres service, and leaves out the
   services that cannot be stood in (Grafana: no package of it can be had here), naming them;
4. the project's images built with the real Dockerfiles, `up -d`, and a wait until every
   one-shot has exited 0 and every service with a healthcheck is healthy;
5. the flow, in containers: the seed step filled raw-data; a mixed file copied into the raw-data
   volume (as the README says) is ingested by the scheduled DAG, its statistics stored, its good
   rows stored as scheduled predictions by the `api` container; its Data Docs report opens through
   the API's published port; the webapp answers; Airflow's API server says its scheduler is
   healthy; and, when docker-compose.yml has an `mlflow` service, MLflow answers its health URL;
   Prometheus has the API as a target, up;
6. `down -v`, then the scale-out overlay (docker-compose.scale.yml) started on the same images
   and proven with a Celery worker, an API replica and the broker killed under load
   (tests/compose/scale.py), then `down -v` again;
7. the engine stopped if this test started it: nothing is left running.
The containers' logs are kept in .local/compose-test/logs/ (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.compose import engine
from tests.compose.engine import log

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCALE_FILE = REPO_ROOT / "docker-compose.scale.yml"
CACHE = REPO_ROOT / ".local" / "compose-test"
PROJECT = "churn-compose-test"
SCALE_PROJECT = "churn-compose-test-scale"
HEALTHY_SECONDS = 600
FLOW_SECONDS = 480
# official image -> stand-in name (tests/compose/standins/<name>.Dockerfile)
STANDIN_FOR = {
    "python:3.11.14-slim-bookworm": "python",
    "apache/airflow:3.3.2-python3.11": "airflow",
    "postgres:18.1-bookworm": "postgres",
    "prom/prometheus:v3.5.0": "prometheus",
    # the scale-out overlay's broker and load balancer
    "redis:7.4.5-bookworm": "redis",
    "haproxy:3.2.6-bookworm": "haproxy",
}
# images no stand-in can replace here, and why: their services are left out of the test
CANNOT_STAND_IN = {"grafana/grafana": "no package of Grafana can be had on these machines"}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")
TEST_FILE = "compose_test_mixed.csv"
# ingestion names its good_data output `<stem>.<first 12 hex digits of the file's sha256>.csv`
# (two files under one name never replace each other's rows); predictions carry that name
PREDICTED_FILE_PATTERN = "compose_test_mixed.%.csv"
TEST_FILE_ROWS, TEST_FILE_BAD_ROWS = 30, 5


# --- the compose files -------------------------------------------------------------------------

class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags: `!reset` (drop what an earlier file set) and `!override`
    (replace instead of merge) load as their plain value, which is what this file's own content is."""


def _compose_tag(loader: ComposeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _compose_tag)
ComposeLoader.add_constructor("!override", _compose_tag)


def load_compose_file(path: Path) -> dict[str, Any]:
    """One compose file as written (an overlay's `!reset []` is an empty list)."""
    return yaml.load(path.read_text(), Loader=ComposeLoader)


# --- the override ------------------------------------------------------------------------------

def dockerfile_base_arguments(dockerfile: Path) -> dict[str, str]:
    """`ARG NAME=default` lines before the first FROM: {NAME: default image}."""
    arguments = {}
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            break
        if words[:1] == ["ARG"] and "=" in words[1]:
            name, default = words[1].split("=", 1)
            arguments[name] = default
    return arguments


def dockerfile_literal_bases(dockerfile: Path) -> list[str]:
    """Images a Dockerfile's FROM lines name directly (not through an ARG, not an earlier stage)."""
    stages: set[str] = set()
    literal = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] != ["FROM"]:
            continue
        image = next(w for w in words[1:] if not w.startswith("--"))
        if not image.startswith("$") and image not in stages:
            literal.append(image)
        if len(words) >= 4 and words[-2].upper() == "AS":
            stages.add(words[-1])
    return literal


@dataclass
class Override:
    """What the compose test changes in docker-compose.yml, and what it leaves out (with why)."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> str:
        header = ("# Generated by tests/compose/run.py: the compose test's only changes to\n"
                  "# docker-compose.yml (images that cannot be pulled here, services that cannot be\n"
                  "# stood in).\n")
        return header + yaml.safe_dump({"services": self.services}, sort_keys=True)


def standin_override(compose: dict[str, Any], standins: dict[str, str]) -> Override:
    """The override swapping each unpullable image of the compose file for its stand-in.

    compose: docker-compose.yml as parsed; standins: official image -> local stand-in tag.
    Raises ValueError for a service whose image has no stand-in and no entry in CANNOT_STAND_IN:
    the test would otherwise hang on a pull that can never succeed.
    """
    override = Override()
    for name, service in compose["services"].items():
        if "build" in service:
            dockerfile = REPO_ROOT / service["build"].get("context", ".") / service["build"]["dockerfile"]
            if literal := dockerfile_literal_bases(dockerfile):
                raise ValueError(
                    f"service {name}: {service['build']['dockerfile']} builds FROM {literal[0]}, which "
                    "cannot be pulled here: make it a build argument with that default (as "
                    "api/Dockerfile does), so that the compose test can pass its stand-in")
            args = {arg: standins[default] for arg, default in dockerfile_base_arguments(dockerfile).items()
                    if default in standins}
            if args:
                override.services[name] = {"build": {"args": args}}
            continue
        image = service["image"]
        if image in standins:
            override.services[name] = {"image": standins[image]}
        elif image.split(":")[0] in CANNOT_STAND_IN:
            override.left_out[name] = f"{image}: {CANNOT_STAND_IN[image.split(':')[0]]}"
            # a profile nobody enables: `up` does not start it, the file itself stays as users run it
            override.services[name] = {"profiles": ["not-in-the-compose-test"]}
        else:
            raise ValueError(f"service {name}: image {image} cannot be pulled here and has no stand-in "
                             f"(add one to tests/compose/standins/ and STANDIN_FOR)")
    return override


def port_mapping_parts(mapping: str) -> list[str]:
    """A `ports:` entry split on the colons that are not inside `${...}`.

    "${PUBLISH_HOST:-127.0.0.1}:${API_PORT:-8000}:8000" -> [host address, host port, container port].
    """
    return re.findall(r"\$\{[^}]*\}|[^:]+", mapping)


def published_port_variables(compose: dict[str, Any]) -> list[str]:
    """The variables that set the host side of published ports (`${X_PORT:-n}`)."""
    names = set()
    for service in compose["services"].values():
        for mapping in service.get("ports", []):
            host_port = port_mapping_parts(str(mapping))[-2]
            names.update(VARIABLE.findall(host_port))
    return sorted(names)


# --- optional services ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HttpCheck:
    """An HTTP URL that must answer 200 with a body containing `expect`."""

    what: str
    url: str
    expect: str


def mlflow_check(compose: dict[str, Any], environ: dict[str, str]) -> HttpCheck | None:
    """HOOK for the lifecycle issue's `mlflow` service: None until docker-compose.yml has one.

    MLflow's tracking server answers GET /health with "OK". The URL is the service's published
    host port (the first `ports:` entry, its variable's value in environ or its default).
    """
    service = compose["services"].get("mlflow")
    if service is None:
        return None
    ports = service.get("ports")
    if not ports:
        raise ValueError("the mlflow service publishes no port: the compose test cannot reach it")
    host_port = _expand(port_mapping_parts(str(ports[0]))[-2], environ)
    return HttpCheck("MLflow tracking server", f"http://127.0.0.1:{host_port}/health", "OK")


def _expand(text: str, environ: dict[str, str]) -> str:
    """`${NAME:-default}` -> environ[NAME] or default (the only form docker-compose.yml uses)."""
    if text.startswith("${") and text.endswith("}"):
        name, _, default = text[2:-1].partition(":-")
        return environ.get(name) or default
    return text


# --- talking to the stack -----------------------------------------------------------------------

class Stack:
    """`docker compose` on compose files (the project's, then the generated override) as one project."""

    def __init__(self, binary: Path, files: list[Path], environ: dict[str, str],
                 project: str = PROJECT) -> None:
        self.argv = [str(binary), "-p", project, *(word for path in files for word in ("-f", str(path)))]
        self.environ = environ

    def __call__(self, *args: str, capture: bool = False, check: bool = True,
                 input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], cwd=REPO_ROOT, env=self.environ, text=True,
                              capture_output=capture, check=check, input=input_text)

    def containers(self) -> list[dict[str, Any]]:
        """Every container's `docker compose ps` entry (Service, Name, State, Health, ExitCode)."""
        out = self("ps", "--all", "--format", "json", capture=True).stdout.strip()
        return json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines() if x]

    def states(self) -> dict[str, list[dict[str, Any]]]:
        """service -> its containers' `docker compose ps` entries (one per replica)."""
        states: dict[str, list[dict[str, Any]]] = {}
        for entry in self.containers():
            states.setdefault(entry["Service"], []).append(entry)
        return states

    def merged_config(self) -> dict[str, Any]:
        """The files as Compose merges them (`config`: overlays, `extends`, `!reset` applied)."""
        return json.loads(self("config", "--format", "json", capture=True).stdout)

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query run by psql inside the postgres container."""
        user, database = self.environ.get("POSTGRES_USER", "churn"), self.environ.get("POSTGRES_DB", "churn")
        out = self("exec", "-T", "postgres", "psql", "-U", user, "-d", database, "-At", "-F", "\t",
                   "-v", "ON_ERROR_STOP=1", "-c", query, capture=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def logs(self, service: str) -> str:
        return self("logs", "--no-color", service, capture=True, check=False).stdout


def wait_for(what: str, condition: Callable[[], Any], seconds: float, every: float = 5) -> Any:
    """Poll until condition() is truthy and return it; RuntimeError naming `what` on timeout."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(every)


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def check_http(check: HttpCheck) -> str:
    status, body = http_get(check.url)
    if status != 200 or check.expect not in body:
        raise AssertionError(f"{check.what}: GET {check.url} answered {status}: {body[:300]!r}")
    return f"{check.what}: GET {check.url} -> 200, has {check.expect!r}"


def expected_services(compose: dict[str, Any], override: Override) -> dict[str, tuple[bool, int]]:
    """service -> (True when it has a healthcheck (must become healthy), False for one-shots;
    its number of replicas)."""
    return {name: ("healthcheck" in service, int((service.get("deploy") or {}).get("replicas") or 1))
            for name, service in compose["services"].items() if name not in override.left_out}


def health_log(container: str) -> str:
    """Docker's record of a container's last healthchecks (exit code, output, start and end)."""
    return subprocess.run(["docker", "inspect", "--format", "{{json .State.Health.Log}}", container],
                          capture_output=True, text=True, check=False).stdout.strip()[-3000:]


def wait_until_healthy(stack: Stack, services: dict[str, tuple[bool, int]], started: float) -> dict[str, str]:
    """Every one-shot exited 0 and every other service healthy; fails at once when one breaks.

    Returns service -> what it reached and when, in seconds since `started` (a time.monotonic()
    taken before `up`, which itself waits for the dependencies of what it starts).
    """
    reached: dict[str, str] = {}

    def settled() -> bool:
        states = stack.states()
        pending = []
        for name, (has_healthcheck, replicas) in services.items():
            entries = states.get(name, [])
            if len(entries) < replicas:
                pending.append(f"{name} ({len(entries)} of {replicas} containers)")
                continue
            ready = 0
            for entry in entries:
                state, health, code = entry["State"], entry.get("Health", ""), entry.get("ExitCode", 0)
                if not has_healthcheck:
                    if state == "exited" and code != 0:
                        raise RuntimeError(
                            f"one-shot {name} failed (exit {code}):\n{stack.logs(name)[-3000:]}")
                    ready += state == "exited"
                elif state in ("exited", "dead") or health == "unhealthy":
                    raise RuntimeError(f"{entry['Name']} is {state} {health}:\n{stack.logs(name)[-3000:]}"
                                       f"\nits last healthchecks: {health_log(entry['Name'])}")
                else:
                    ready += health == "healthy"
            if ready == len(entries):
                if name not in reached:
                    what = "healthy" if has_healthcheck else "exited 0"
                    count = f" ({len(entries)} replicas)" if len(entries) > 1 else ""
                    reached[name] = f"{what}{count} by {time.monotonic() - started:.0f} s"
            else:
                pending.append(f"{name} ({ready} of {len(entries)} ready)")
        if pending:
            log("waiting for: " + ", ".join(pending))
        return not pending

    wait_for("every service to be healthy", settled, HEALTHY_SECONDS, every=5)
    return reached


# --- the flow -----------------------------------------------------------------------------------

def mixed_file() -> bytes:
    """30 customers of the committed dataset as a raw file holds them; 5 with a negative tenure."""
    from model.contract import TARGET
    from model.data import DATASET_PATH

    with DATASET_PATH.open(newline="") as source:
        reader = csv.DictReader(source)
        columns = [c for c in reader.fieldnames or [] if c != TARGET]
        rows = [row for _, row in zip(range(TEST_FILE_ROWS), reader, strict=False)]
    for row in rows[:TEST_FILE_BAD_ROWS]:
        row["tenure"] = "-5"  # out of the contract's range: an invalid row
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def prove_the_flow(stack: Stack, compose: dict[str, Any], api_url: str, webapp_url: str,
                   airflow_url: str) -> list[str]:
    """The assertions of step 5; returns one line per proof for the summary."""
    proofs = []
    seeded = stack.logs("seed-raw-data")
    if "seeded /data/raw-data with" not in seeded:
        raise AssertionError(f"seed-raw-data did not seed raw-data:\n{seeded[-2000:]}")
    proofs.append("seed-raw-data: " + next(line.split("|", 1)[-1].strip() for line in seeded.splitlines()
                                           if "seeded /data/raw-data with" in line))
    # at one file a minute, the 20 seeded files would keep ours waiting for up to 20 minutes
    stack("exec", "-T", "api", "find", "/data/raw-data", "-maxdepth", "1", "-name", "*.csv", "-delete")

    local = CACHE / TEST_FILE
    local.write_bytes(mixed_file())
    dropped = time.monotonic()
    stack("cp", str(local), f"airflow-scheduler:/data/raw-data/{TEST_FILE}")  # the README's command
    log(f"copied {TEST_FILE} into the raw-data volume; waiting for the scheduled ingestion")
    ingestion = wait_for(
        "the ingestion DAG to store the file's statistics",
        lambda: stack.sql("SELECT outcome, valid_rows, invalid_rows, coalesce(report_url, '') "
                          f"FROM ingested_files WHERE file_name = '{TEST_FILE}'"),
        FLOW_SECONDS,
    )
    outcome, valid, invalid, report_url = ingestion[0]
    good_rows = TEST_FILE_ROWS - TEST_FILE_BAD_ROWS
    assert (outcome, int(valid), int(invalid)) == ("mixed", good_rows, TEST_FILE_BAD_ROWS), ingestion
    proofs.append(f"ingestion: {TEST_FILE} stored as {outcome}, {valid} valid / {invalid} invalid rows, "
                  f"{time.monotonic() - dropped:.0f} s after the copy")

    assert report_url.startswith(f"{api_url}/reports/"), report_url
    # the statistics row (with the link) and the report are written by two parallel tasks
    # (save-statistics, send-alerts): the link may be stored a few seconds before it opens
    status, page = wait_for("the report link to open",
                            lambda: (answer := http_get(report_url))[0] == 200 and answer, 180)
    assert "<html" in page.lower(), page[:300]
    # the link is a small page that sends the browser on to the Data Docs page (meta refresh)
    refresh = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page)
    docs_url = urllib.parse.urljoin(report_url, refresh[1]) if refresh else report_url
    status, docs = http_get(docs_url)
    assert status == 200 and TEST_FILE in docs and "tenure" in docs, (docs_url, status, docs[:300])
    proofs.append(f"report link of the mixed file opens: {report_url} -> 200 -> {docs_url} -> 200, "
                  "Data Docs naming the file and 'tenure'")

    log("waiting for the scheduled prediction job")
    predictions = wait_for(
        "the prediction DAG to store the good rows",
        lambda: [row for row in stack.sql(
            "SELECT count(*), count(DISTINCT customer_id), string_agg(DISTINCT source, ',') "
            f"FROM predictions WHERE file_name LIKE '{PREDICTED_FILE_PATTERN}'") if row[0] != "0"],
        FLOW_SECONDS,
    )
    assert predictions[0] == [str(good_rows), str(good_rows), "scheduled"], predictions
    ledger = stack.sql(
        f"SELECT count(*) FROM predicted_files WHERE file_name LIKE '{PREDICTED_FILE_PATTERN}'")
    assert ledger == [["1"]], ledger
    api_log = stack.logs("api")
    assert "POST /predict" in api_log, "the api container's log shows no POST /predict"
    proofs.append(f"predictions: {good_rows} good rows stored once as source=scheduled by the api "
                  f"container (its log has POST /predict), ledger row written, "
                  f"{time.monotonic() - dropped:.0f} s after the copy")

    proofs.append(predict_in_the_browser(stack, webapp_url))
    checks = [
        HttpCheck("API health", f"{api_url}/health", '"database":"ok"'),
        HttpCheck("webapp health", f"{webapp_url}/_stcore/health", "ok"),
    ]
    status, body = http_get(f"{airflow_url}/api/v2/monitor/health")
    assert status == 200, (status, body[:300])
    healthy = {name for name, part in json.loads(body).items() if part.get("status") == "healthy"}
    expected = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
    assert healthy >= expected, body[:300]
    proofs.append(f"Airflow API server: GET {airflow_url}/api/v2/monitor/health -> 200, "
                  f"{', '.join(sorted(expected))} healthy")
    optional = mlflow_check(compose, stack.environ)
    if optional is not None:
        checks.append(optional)
    else:
        proofs.append("MLflow: docker-compose.yml has no `mlflow` service yet: nothing to check")
    proofs += [check_http(check) for check in checks]
    return proofs


def read_api_token(stack: Stack) -> str:
    """The token compose's api-token step generated, read where the API reads it."""
    token = stack("exec", "-T", "api", "cat", "/data/secrets/api-token", capture=True).stdout.strip()
    assert len(token) >= 40, "the api-token volume holds no generated token"
    return token


def closed_by_default(stack: Stack, api_url: str) -> str:
    """The token was generated on first start and printed once; the API refuses a call without it
    (and one with a wrong token) and answers the same call with it."""
    token = read_api_token(stack)
    printed = stack.logs("api-token")
    assert f"API token generated (shown once, kept in /data/secrets/api-token): {token}" in printed, printed
    statuses = []
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token}"}):
        request = urllib.request.Request(f"{api_url}/model", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    assert statuses == [401, 401, 200], statuses
    return ("closed by default: the api-token step generated the token (printed once in its log); "
            f"GET {api_url}/model without it -> 401, with a wrong one -> 401, with it -> 200")


def predict_in_the_browser(stack: Stack, webapp_url: str) -> str:
    """Debian's Chromium opens the webapp, predicts one customer with the form's defaults, and the
    row is stored as source=webapp: the webapp container reaches the api container."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        engine.apt_install("chromium")
    customer = "C-COMPOSE-WEBAPP"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(webapp_url)
            page.get_by_role("heading", name="Predict churn").wait_for()
            page.get_by_role("textbox", name="Customer id", exact=True).fill(customer)
            page.get_by_role("button", name="Predict").click()
            page.locator("[data-testid='stMetric']").filter(has_text="Churn probability").wait_for()
        finally:
            browser.close()
    rows = stack.sql(f"SELECT source FROM predictions WHERE customer_id = '{customer}'")
    assert rows == [["webapp"]], rows
    return (f"webapp: Chromium filled the form at {webapp_url}, saw the churn probability, "
            "and the row was stored as source=webapp")


# --- the whole run ------------------------------------------------------------------------------

def free_port() -> int:
    """A free loopback port, never one given before in this run (tests/api_server.py)."""
    from tests.api_server import free_port as shared_free_port

    return shared_free_port("127.0.0.1")


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    log(f"== {name}")
    try:
        yield
    finally:
        timings[name] = time.monotonic() - start
        log(f"== {name}: {timings[name]:.0f} s")


def build_standins() -> dict[str, str]:
    """official image -> stand-in tag, each built unless its recipe's tag exists already."""
    base = engine.debian_base_image()
    python = engine.build_standin("python", {"BASE_IMAGE": base})
    # the project's own Airflow pins constrain the stand-in's Airflow install
    constraints = (REPO_ROOT / "requirements" / "airflow.txt").read_bytes()
    airflow = engine.build_standin("airflow", {"PYTHON_IMAGE": python}, {"constraints.txt": constraints})
    tags = {"python": python, "airflow": airflow}
    for name in ("postgres", "prometheus", "redis", "haproxy"):
        tags[name] = engine.build_standin(name, {"BASE_IMAGE": base})
    return {official: tags[name] for official, name in STANDIN_FOR.items()}


def prometheus_url(environ: dict[str, str]) -> str:
    return f"http://127.0.0.1:{environ['PROMETHEUS_PORT']}"


def start(stack: Stack, compose: dict[str, Any], override: Override, timings: dict[str, float],
          what: str) -> dict[str, str]:
    """`up -d` on images already built, then every healthcheck passing (see wait_until_healthy)."""
    for name, why in override.left_out.items():
        log(f"LEFT OUT of the compose test: {name} ({why})")
    with step(f"{what}: up, and every healthcheck passing", timings):
        up_started = time.monotonic()
        stack("up", "--detach", "--no-build")
        return wait_until_healthy(stack, expected_services(compose, override), up_started)


def report(title: str, compose: dict[str, Any], override: Override, reached: dict[str, str],
           proofs: list[str]) -> None:
    print(f"\n{title} Services (seconds from `up`):")
    for name in compose["services"]:
        print(f"  - {name}: {reached.get(name) or 'LEFT OUT: ' + override.left_out[name]}")
    print("Proofs:")
    for line in proofs:
        print(f"  - {line}")


def scale_stack(
    binary: Path, standins: dict[str, str], environ: dict[str, str],
) -> tuple[Stack, dict[str, Any], Override]:
    """The overlay's stack: docker-compose.yml + docker-compose.scale.yml + their stand-in override."""
    merged = Stack(binary, [COMPOSE_FILE, SCALE_FILE], environ, SCALE_PROJECT).merged_config()
    override = standin_override(merged, standins)
    override_file = CACHE / "docker-compose.scale-standins.yml"
    override_file.write_text(override.to_yaml())
    return Stack(binary, [COMPOSE_FILE, SCALE_FILE, override_file], environ, SCALE_PROJECT), merged, override


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="docker compose up, proven in containers")
    parser.add_argument("--keep", action="store_true", help="leave the last stack running (no down -v)")
    parser.add_argument("--plain-only", action="store_true", help="docker-compose.yml only, not the overlay")
    parser.add_argument("--overlay-only", action="store_true",
                        help="the scale-out overlay and its failure scenarios only (not the plain stage)")
    parser.add_argument("--throughput", action="store_true",
                        help="only the scale-out overlay's throughput figures (1 and 2 workers, replicas)")
    args = parser.parse_args(argv)
    from tests.compose import scale

    timings: dict[str, float] = {}
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    compose = load_compose_file(COMPOSE_FILE)
    with step("the Docker engine", timings):
        docker = engine.ensure_engine(CACHE / "dockerd.log")
    stack: Stack | None = None
    passed = False
    try:
        with step("Compose v2", timings):
            binary = engine.compose_binary(CACHE)
            log(engine.run([str(binary), "version"], capture_output=True).stdout.strip()
                + " (Debian's docker-compose package)")
        with step("stand-in base images", timings):
            standins = build_standins()
        for official, tag in sorted(standins.items()):
            log(f"stand-in for {official}: {tag} (built offline from Debian packages)")
        override = standin_override(compose, standins)
        override_file = CACHE / "docker-compose.standins.yml"
        override_file.write_text(override.to_yaml())
        environ = {**os.environ, **{name: str(free_port()) for name in published_port_variables(compose)}}
        environ["REPORTS_BASE_URL"] = f"http://127.0.0.1:{environ['API_PORT']}/reports"
        stack = Stack(binary, [COMPOSE_FILE, override_file], environ)
        with step("project images (real Dockerfiles)", timings):
            stack("build")
        if not (args.throughput or args.overlay_only):
            reached = start(stack, compose, override, timings, "docker-compose.yml")
            with step("the flow in containers", timings):
                proofs = prove_the_flow(
                    stack, compose,
                    api_url=f"http://127.0.0.1:{environ['API_PORT']}",
                    webapp_url=f"http://127.0.0.1:{environ['WEBAPP_PORT']}",
                    airflow_url=f"http://127.0.0.1:{environ['AIRFLOW_API_PORT']}",
                )
                proofs.append(closed_by_default(stack, f"http://127.0.0.1:{environ['API_PORT']}"))
                proofs.append(scale.prometheus_scrapes(prometheus_url(environ), 1))
            report("docker-compose.yml passed.", compose, override, reached, proofs)
            if args.plain_only:
                passed = True
                return 0
            save_logs(stack, compose)
            with step("down -v", timings):
                stack("down", "--volumes", "--remove-orphans")
        stack, merged, scale_override = scale_stack(binary, standins, environ)
        reached = start(stack, merged, scale_override, timings, "the scale-out overlay")
        overlay = scale.Overlay(stack, environ)
        if args.throughput:
            with step("throughput", timings):
                figures = scale.throughput(overlay)
            print("\nThroughput (same offered load for each pair, same run):")
            for line in figures:
                print(f"  - {line}")
            passed = True
            return 0
        with step("the overlay's failure scenarios", timings):
            proofs = scale.prove_the_overlay(overlay, prometheus_url(environ))
        report("docker-compose.yml + docker-compose.scale.yml passed.", merged, scale_override, reached,
               proofs)
        passed = True
        return 0
    finally:
        if stack is not None:
            save_logs(stack, compose)
            if not args.keep:
                with step("down -v", timings):
                    stack("down", "--volumes", "--remove-orphans", check=False)
        if not args.keep:
            docker.stop()
        print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
              + f"; total {time.monotonic() - started:.0f} s")
        # the plain closing line CI reads: the compose test is one test
        print(f"compose-test: {int(passed)} passed, {int(not passed)} failed", flush=True)


def save_logs(stack: Stack, compose: dict[str, Any]) -> None:
    """Every service's log in .local/compose-test/logs/<project>/ (the overlay's services included)."""
    folder = CACHE / "logs" / stack.argv[2]
    folder.mkdir(parents=True, exist_ok=True)
    for name in stack.states():
        (folder / f"{name}.log").write_text(stack.logs(name))
    log(f"container logs in {folder}")


if __name__ == "__main__":
    sys.exit(main())

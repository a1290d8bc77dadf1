"""The scale-out overlay (docker-compose.scale.yml) proven in containers, and its throughput.

Called by `tests/compose/run.py` after the plain `docker compose up` checks, on the images that run
built (nothing is built again). With the overlay up (CeleryExecutor, 2 Celery workers, a Redis
broker, 2 API replicas behind HAProxy, Prometheus scraping every replica), files flowing:

1. a Celery worker is killed (`docker kill`) while it runs a task of the ingestion DAG: the
   scheduler fails that try once the worker's heartbeats stop, and the retry runs on the other
   worker; every file ends in good_data/bad_data once, with one statistics row, and its good rows
   stored once as scheduled predictions (ledger rows = stored rows);
2. an API replica is killed while 8 client threads send POST /predict through the load balancer's
   published port, each call with its own idempotency key (batch_key) and, like the webapp and
   the prediction job, sent again with the same key when it fails: no call fails for good, and
   PostgreSQL holds every batch once (rows per batch_key = records sent);
3. the broker is restarted while work waits in it (workers stopped, ingestion tasks queued): the
   queued messages survive the restart (append-only file) and run once the workers are back.
Prometheus's targets list names every API replica, up.

`python -m tests.compose.run --throughput` brings the overlay up the same way and prints files
ingested per minute and scheduled predictions per second with 1 and 2 Celery workers, and
POST /predict requests per second with 1 and 2 API replicas, each pair at the same offered load in
the same run (loopback only: the load balancer's published port on 127.0.0.1).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.api_client import ApiError, ApiRejectedError, ChurnApiClient
from tests.compose.engine import log

# the Celery workers' default queue (Airflow's [operators] default_queue)
CELERY_QUEUE = "default"
INGESTION_DAG, PREDICTION_DAG = "data_ingestion", "prediction_job"
FLOW_SECONDS = 900


# --- customer files --------------------------------------------------------------------------------

def customer_file(start: int, rows: int, bad_rows: int) -> bytes:
    """`rows` customers of the committed dataset from row `start`, the first `bad_rows` with a
    negative tenure (invalid), as a raw file holds them (no label column)."""
    from model.contract import TARGET
    from model.data import DATASET_PATH

    with DATASET_PATH.open(newline="") as source:
        reader = csv.DictReader(source)
        columns = [c for c in reader.fieldnames or [] if c != TARGET]
        selected = [row for index, row in enumerate(reader) if start <= index < start + rows]
    for row in selected[:bad_rows]:
        row["tenure"] = "-5"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(selected)
    return out.getvalue().encode()


# --- the stack's parts, seen from the test process ------------------------------------------------

class Database:
    """SQL on the stack's PostgreSQL through its published port (psycopg, autocommit)."""

    def __init__(self, port: str, environ: dict[str, str]) -> None:
        self.port = port
        self.user = environ.get("POSTGRES_USER", "churn")
        self.password = environ.get("POSTGRES_PASSWORD", "churn")
        self.names = {"churn": environ.get("POSTGRES_DB", "churn"),
                      "airflow": environ.get("AIRFLOW_DATABASE", "airflow")}

    def rows(self, query: str, params: tuple[Any, ...] = (),
             database: str = "churn") -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                             dbname=self.names[database], autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]


class AirflowApi:
    """Airflow's REST API on its published port (simple auth manager, all admins: a free token)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._token is None:
            with urllib.request.urlopen(f"{self.url}/auth/token", timeout=30) as response:
                self._token = json.load(response)["access_token"]
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def pause(self, dag_id: str, paused: bool) -> None:
        """Pause (no run starts) or unpause a DAG."""
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str) -> str:
        """A manual run of the DAG now; returns its run id."""
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        return str(run["dag_run_id"])


@dataclass
class Container:
    """One container of a service: its id (the hostname Airflow records for a task) and name."""

    id: str
    name: str
    service: str

    def owns_hostname(self, hostname: str) -> bool:
        return bool(hostname) and (self.id.startswith(hostname) or hostname == self.name)


class Overlay:
    """The overlay stack: `docker compose` with the three files, plus direct access to its parts."""

    def __init__(self, stack: Any, environ: dict[str, str]) -> None:
        self.stack = stack  # tests.compose.run.Stack on [compose, scale overlay, stand-ins]
        self.environ = environ
        self.db = Database(environ["POSTGRES_HOST_PORT"], environ)
        self.airflow = AirflowApi(f"http://127.0.0.1:{environ['AIRFLOW_API_PORT']}")
        self.api_url = f"http://127.0.0.1:{environ['API_PORT']}"  # the load balancer
        # the token compose's api-token step generated (closed by default), read where the API reads it
        self.api_token = stack("exec", "-T", "api", "cat", "/data/secrets/api-token",
                               capture=True).stdout.strip()

    def containers(self, service: str) -> list[Container]:
        out = self.stack("ps", "--all", "--format", "json", service, capture=True).stdout.strip()
        entries = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines() if x]
        ids = {e["ID"]: e for e in entries}
        full = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.Config.Hostname}}", *ids],
                              capture_output=True, text=True, check=True).stdout.split("\n")
        result = []
        for line, entry in zip(full, entries, strict=False):
            container_id, hostname = line.split()
            result.append(Container(container_id, entry["Name"], entry["Service"]))
            assert container_id.startswith(hostname), (container_id, hostname)
        return result

    def running(self, service: str) -> list[Container]:
        out = self.stack("ps", "--format", "json", "--status", "running", service,
                         capture=True).stdout.strip()
        entries = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines() if x]
        names = {e["Name"] for e in entries}
        return [c for c in self.containers(service) if c.name in names]

    def redis(self, *command: str) -> str:
        return self.stack("exec", "-T", "redis", "redis-cli", *command, capture=True).stdout.strip()

    def queued_messages(self) -> int:
        """Messages waiting in the Celery queue (kombu keeps one Redis list per queue and priority)."""
        keys = self.redis("--scan", "--pattern", f"{CELERY_QUEUE}*").splitlines()
        return sum(int(self.redis("LLEN", key) or 0) for key in keys if key)

    def drop_files(self, files: dict[str, bytes]) -> None:
        """Copy files into the raw-data volume with `docker compose cp` (the README's command),
        their modification time a minute old so ingestion takes them at once (no settle wait)."""
        from tests.compose.run import CACHE

        staging = CACHE / "drop"
        staging.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            local = staging / name
            local.write_bytes(content)
            old = time.time() - 60
            os.utime(local, (old, old))
            self.stack("cp", str(local), f"airflow-scheduler:/data/raw-data/{name}")

    def clear_raw_data(self) -> None:
        self.stack("exec", "-T", "airflow-scheduler", "find", "/data/raw-data", "-maxdepth", "1",
                   "-name", "*.csv", "-delete")

    def listing(self, folder: str) -> list[str]:
        out = self.stack("exec", "-T", "airflow-scheduler", "find", folder, "-maxdepth", "1", "-type", "f",
                         "-printf", "%f\\n", capture=True).stdout
        return sorted(line for line in out.splitlines() if line and not line.startswith("."))

    def ingested(self, names: list[str]) -> dict[str, tuple[int, int, int]]:
        """file name -> (statistics rows, valid rows, invalid rows) for the names with a row."""
        rows = self.db.rows("SELECT file_name, count(*), max(valid_rows), max(invalid_rows) "
                            "FROM ingested_files WHERE file_name = ANY(%s) GROUP BY file_name", (names,))
        return {name: (int(n), int(valid), int(invalid)) for name, n, valid, invalid in rows}

    def wait_ingested(self, names: list[str],
                      seconds: float = FLOW_SECONDS) -> dict[str, tuple[int, int, int]]:
        return wait_for(f"{len(names)} files ingested",
                        lambda: when(self.ingested(names), lambda found: len(found) == len(names)),
                        seconds, every=2)

    def predicted(self, stems: list[str]) -> dict[str, tuple[int, int, int]]:
        """good_data file -> (ledger entries, rows the ledger says were stored, rows stored)."""
        rows = self.db.rows(
            "SELECT f.file_name, count(DISTINCT f.checksum), max(f.rows), "
            "(SELECT count(*) FROM predictions p WHERE p.file_name = f.file_name) "
            "FROM predicted_files f WHERE split_part(f.file_name, '.', 1) = ANY(%s) GROUP BY f.file_name",
            (stems,))
        return {name: (int(n), int(ledger_rows), int(stored)) for name, n, ledger_rows, stored in rows}

    def set_restart(self, container: Container, policy: str) -> None:
        subprocess.run(["docker", "update", f"--restart={policy}", container.id], check=True,
                       capture_output=True)

    @contextmanager
    def killed(self, container: Container) -> Iterator[None]:
        """`docker kill` (SIGKILL) with its restart policy off, so it stays dead until the block ends;
        then started again with its policy back."""
        self.set_restart(container, "no")
        subprocess.run(["docker", "kill", container.id], check=True, capture_output=True)
        log(f"docker kill {container.name}")
        try:
            yield
        finally:
            subprocess.run(["docker", "start", container.id], check=True, capture_output=True)
            self.set_restart(container, "unless-stopped")
            log(f"{container.name} started again")


def wait_for(what: str, condition: Callable[[], Any], seconds: float, every: float = 5) -> Any:
    from tests.compose.run import wait_for as wait

    return wait(what, condition, seconds, every)


def when(value: Any, accept: Callable[[Any], bool]) -> Any:
    """`value` when accept(value), else None (a wait_for condition that returns what it saw)."""
    return value if accept(value) else None


# --- scenario 1: a Celery worker killed mid-task ---------------------------------------------------

def running_task(overlay: Overlay, run_ids: list[str], min_age_seconds: float) -> tuple[Any, ...] | None:
    rows = overlay.db.rows(
        "SELECT dag_id, run_id, task_id, try_number, hostname FROM task_instance "
        "WHERE dag_id = %s AND run_id = ANY(%s) AND state = 'running' AND hostname <> '' "
        "AND task_id IN ('validate-data', 'save-statistics', 'split-and-save-data', 'send-alerts') "
        "AND start_date < now() - make_interval(secs => %s) ORDER BY start_date LIMIT 1",
        (INGESTION_DAG, run_ids, min_age_seconds), database="airflow")
    return rows[0] if rows else None


def worker_killed_mid_task(overlay: Overlay, proofs: list[str]) -> None:
    files = {f"scale_worker_{i:02d}.csv": customer_file(1000 + 200 * i, 200, 10 if i % 2 else 0)
             for i in range(8)}
    names = sorted(files)
    overlay.drop_files(files)
    runs = [overlay.airflow.trigger(INGESTION_DAG) for _ in names]
    log(f"{len(files)} files dropped, {len(runs)} ingestion runs triggered; waiting for a running task")
    task = wait_for("a running ingestion task to kill its worker",
                    lambda: running_task(overlay, runs, 1.0), 300, every=0.5)
    dag_id, run_id, task_id, try_number, hostname = task
    workers = overlay.running("airflow-worker")
    victim = next((w for w in workers if w.owns_hostname(hostname)), None)
    assert victim is not None, f"no running worker has hostname {hostname}: {workers}"
    survivors = [w for w in workers if w is not victim]
    assert survivors, "the overlay runs one worker only"
    with overlay.killed(victim):
        log(f"killed {victim.name} while it ran {task_id} of {run_id} (try {try_number})")

        def retried() -> tuple[Any, ...] | None:
            rows = overlay.db.rows(
                "SELECT state, try_number, hostname FROM task_instance "
                "WHERE dag_id = %s AND run_id = %s AND task_id = %s", (dag_id, run_id, task_id),
                database="airflow")
            return rows[0] if rows and rows[0][0] == "success" else None

        _, final_try, final_host = wait_for(f"{task_id} of {run_id} retried and successful",
                                                retried, FLOW_SECONDS, every=3)
        assert final_try > try_number, (final_try, try_number)
        assert any(w.owns_hostname(final_host) for w in survivors), (final_host, survivors)
        history = overlay.db.rows(
            "SELECT try_number, state, hostname FROM task_instance_history "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY try_number",
            (dag_id, run_id, task_id), database="airflow")
        killed_try = [h for h in history if h[0] == try_number]
        assert killed_try and killed_try[0][1] == "failed" and victim.owns_hostname(killed_try[0][2]), history
        ingested = overlay.wait_ingested(names)
    proofs.append(f"worker killed mid-task: {victim.name} killed while it ran {task_id} (try {try_number}); "
                  f"try {try_number} failed on it (heartbeat timeout), try {final_try} succeeded on "
                  f"{next(w.name for w in survivors if w.owns_hostname(final_host))}")
    check_files_once(overlay, files, ingested, proofs)


def check_files_once(overlay: Overlay, files: dict[str, bytes], ingested: dict[str, tuple[int, int, int]],
                     proofs: list[str]) -> None:
    """Every file: one statistics row, its good rows in one good_data file and its bad rows in one
    bad_data file (nothing left in raw-data or its claims), and its good rows predicted once."""
    names = sorted(files)
    stems = [Path(name).stem for name in names]
    doubled = {name: n for name, (n, _, _) in ingested.items() if n != 1}
    assert not doubled, f"statistics rows per file: {doubled}"
    waiting = [n for n in overlay.listing("/data/raw-data") + overlay.listing("/data/raw-data/.claims")
               if Path(n).stem.split(".")[0] in stems]
    assert not waiting, f"still in raw-data: {waiting}"
    good, bad = overlay.listing("/data/good_data"), overlay.listing("/data/bad_data")
    for name in names:
        stem = Path(name).stem
        _, valid, invalid = ingested[name]
        in_good = [g for g in good if g.split(".")[0] == stem]
        in_bad = [b for b in bad if b.split(".")[0] == stem and ".refused" not in b]
        assert len(in_good) == (1 if valid else 0), (name, in_good)
        assert len(in_bad) == (1 if invalid else 0), (name, in_bad)
    total_valid = sum(valid for _, valid, _ in ingested.values())
    total_invalid = sum(invalid for _, _, invalid in ingested.values())
    proofs.append(f"  {len(names)} files: one statistics row each, {total_valid} good rows in "
                  f"{sum(1 for n in names if ingested[n][1])} good_data files, {total_invalid} bad rows in "
                  f"{sum(1 for n in names if ingested[n][2])} bad_data files, none left in raw-data")
    expected = {stem for stem in stems if ingested[f"{stem}.csv"][1]}
    overlay.airflow.trigger(PREDICTION_DAG)
    predicted = wait_for("the prediction job to store every good file's rows",
                         lambda: when(overlay.predicted(sorted(expected)),
                                      lambda p: {k.split(".")[0] for k in p} == expected),
                         FLOW_SECONDS, every=3)
    for name, (entries, ledger_rows, stored) in predicted.items():
        assert entries == 1 and ledger_rows == stored, (name, entries, ledger_rows, stored)
    per_file = {k.split(".")[0]: stored for k, (_, _, stored) in predicted.items()}
    assert per_file == {Path(n).stem: ingested[n][1] for n in names if ingested[n][1]}, per_file
    versions = overlay.db.rows(
        "SELECT DISTINCT model_version FROM predictions WHERE split_part(file_name, '.', 1) = ANY(%s)",
        (sorted(expected),))
    assert versions and all(v[0] for v in versions), versions
    proofs.append(f"  predictions: {sum(per_file.values())} rows stored once ({len(predicted)} ledger rows, "
                  f"rows per file = its good rows), each naming its model version "
                  f"({', '.join(sorted(v[0] for v in versions))})")


# --- scenario 2: an API replica killed under client load ------------------------------------------

@dataclass
class LoadResult:
    """What a bounded client load through the load balancer saw."""

    calls: int = 0
    retried_calls: int = 0
    attempts: int = 0
    failed: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def client_load(api_url: str, prefix: str, threads: int, calls_per_thread: int, records_per_call: int,
                *, token: str, attempts: int = 6, on_progress: Callable[[int], None] | None = None,
                ) -> LoadResult:
    """`threads` clients, each sending `calls_per_thread` POST /predict through `api_url`, each call
    with its own batch_key `<prefix>:<thread>:<call>`; a call that fails as unavailable is sent
    again with the same key (0.5 s apart, at most `attempts` times), as the webapp's user and the
    prediction job's retries do. Bounded in count; loopback only."""
    from model.contract import IDENTIFIER, default_record  # the webapp form's default customer

    result = LoadResult()
    done = [0]

    def client(number: int) -> None:
        api = ChurnApiClient(api_url, token=token, timeout_seconds=30)
        try:
            for call in range(calls_per_thread):
                key = f"{prefix}:{number}:{call}"
                records = [{**default_record(), IDENTIFIER: f"{key}:{r}"} for r in range(records_per_call)]
                for attempt in range(1, attempts + 1):
                    try:
                        answer = api.predict(records, source="webapp", batch_key=key)
                    except ApiRejectedError as error:
                        with result.lock:
                            result.failed.append(f"{key}: refused: {error.message}")
                        break
                    except ApiError as error:
                        if attempt == attempts:
                            with result.lock:
                                result.failed.append(f"{key}: {error.message}")
                        time.sleep(0.5)
                        continue
                    with result.lock:
                        result.versions.add(str(answer["model_version"]))
                        result.attempts += attempt
                        result.retried_calls += attempt > 1
                    break
                with result.lock:
                    result.calls += 1
                    done[0] += 1
                    if on_progress is not None:
                        on_progress(done[0])
        finally:
            api.close()

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    result.seconds = time.monotonic() - started
    return result


def replica_killed_under_load(overlay: Overlay, proofs: list[str]) -> None:
    replicas = overlay.running("api")
    assert len(replicas) >= 2, f"the overlay runs {len(replicas)} API replica(s)"
    victim = replicas[0]
    threads, calls, records = 8, 40, 5
    total = threads * calls
    kill_at = total // 3
    killed = threading.Event()

    def progress(done: int) -> None:
        if done >= kill_at and not killed.is_set():
            killed.set()
            overlay.set_restart(victim, "no")
            subprocess.run(["docker", "kill", victim.id], check=True, capture_output=True)
            log(f"docker kill {victim.name} after {done} of {total} client calls")

    prefix = f"compose-test-lb-{int(time.time())}"
    try:
        load = client_load(overlay.api_url, prefix, threads, calls, records, token=overlay.api_token,
                           on_progress=progress)
    finally:
        subprocess.run(["docker", "start", victim.id], check=False, capture_output=True)
        overlay.set_restart(victim, "unless-stopped")
    assert killed.is_set(), "the replica was never killed"
    assert load.calls == total and not load.failed, load.failed[:5]
    batches = overlay.db.rows(
        "SELECT batch_key, count(*), count(DISTINCT customer_id), min(model_version) FROM predictions "
        "WHERE batch_key LIKE %s GROUP BY batch_key", (f"{prefix}:%",))
    wrong = [b for b in batches if (b[1], b[2]) != (records, records) or not b[3]]
    assert len(batches) == total and not wrong, (len(batches), wrong[:5])
    proofs.append(f"API replica killed under load: {victim.name} killed after {kill_at} of {total} calls "
                  f"({threads} clients x {calls} calls x {records} records, idempotency keys, through the "
                  f"load balancer): 0 calls failed for good, {load.retried_calls} calls needed a retry "
                  f"({load.attempts} attempts in all); PostgreSQL holds {len(batches)} batches of "
                  f"{records} rows each, none twice; model version(s) {', '.join(sorted(load.versions))}")


# --- scenario 3: the broker restarted with work queued ---------------------------------------------

def broker_restarted_with_work_queued(overlay: Overlay, proofs: list[str]) -> None:
    workers = overlay.running("airflow-worker")
    overlay.stack("stop", "airflow-worker")
    log("workers stopped: the next tasks wait in the broker")
    files = {f"scale_broker_{i:02d}.csv": customer_file(3000 + 100 * i, 100, 0) for i in range(3)}
    names = sorted(files)
    try:
        overlay.drop_files(files)
        for _ in names:
            overlay.airflow.trigger(INGESTION_DAG)
        queued = wait_for("tasks queued in the broker",
                          lambda: when(overlay.queued_messages(), lambda n: n >= len(names)), 300, every=2)
        overlay.stack("restart", "redis")
        wait_for("the broker healthy again", lambda: overlay.redis("PING") == "PONG", 60, every=1)
        after = overlay.queued_messages()
        assert after >= queued, f"{queued} messages queued before the restart, {after} after"
    finally:
        # the containers themselves (`compose start` would also rerun the one-shot dependencies)
        subprocess.run(["docker", "start", *(w.id for w in workers)], check=True, capture_output=True)
    log("broker restarted with the messages kept; workers started")
    ingested = overlay.wait_ingested(names)
    assert all(n == 1 for n, _, _ in ingested.values()), ingested
    proofs.append(f"broker restarted: {queued} tasks queued in Redis while the workers were stopped, "
                  f"{after} still queued after `restart redis`; with the workers back, all {len(names)} "
                  "files ingested, one statistics row each")


# --- Prometheus ------------------------------------------------------------------------------------

def prometheus_targets(prometheus_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets?state=active", timeout=10) as response:
        targets = json.load(response)["data"]["activeTargets"]
    return [t for t in targets if t["labels"].get("job") == "churn-api"]


def prometheus_scrapes(prometheus_url: str, replicas: int) -> str:
    """Prometheus's `churn-api` job has `replicas` targets, all up (waits for a scrape or two)."""
    targets = wait_for(
        f"Prometheus to scrape {replicas} API target(s)",
        lambda: when(prometheus_targets(prometheus_url),
                     lambda t: len(t) == replicas and all(x["health"] == "up" for x in t)),
        120, every=3)
    instances = ", ".join(sorted(t["labels"]["instance"] for t in targets))
    return f"Prometheus: job churn-api has {replicas} target(s) up ({instances}) at {prometheus_url}"


# --- throughput ------------------------------------------------------------------------------------

def scale(overlay: Overlay, service: str, count: int) -> None:
    overlay.stack("up", "--detach", "--no-build", "--no-recreate", "--scale", f"{service}={count}", service)
    wait_for(f"{count} healthy {service} container(s)",
             lambda: len([c for c in overlay.stack.containers() if c["Service"] == service
                          and c.get("Health") == "healthy" and c["State"] == "running"]) == count
             and len(overlay.running(service)) == count, 300, every=3)


def ingestion_throughput(overlay: Overlay, workers: int, files: int, rows: int) -> tuple[float, float]:
    """(files ingested per minute, scheduled predictions per second) with `workers` Celery workers:
    `files` files of `rows` rows dropped at once and one ingestion run triggered per file, then one
    prediction run for all of them."""
    scale(overlay, "airflow-worker", workers)
    overlay.airflow.pause(PREDICTION_DAG, True)  # one prediction run for the whole batch, below
    tag = int(time.time())  # new names (and so new good_data files) on every run of the bench
    batch = {f"bench_{tag}_w{workers}_{i:02d}.csv": customer_file(200 * i, rows, 0) for i in range(files)}
    names = sorted(batch)
    overlay.drop_files(batch)
    started = time.monotonic()
    for _ in names:
        overlay.airflow.trigger(INGESTION_DAG)
    overlay.wait_ingested(names)
    # the last file is ingested once split-and-save has written it too: wait for every good file
    stems = [Path(n).stem for n in names]
    wait_for("every good_data file written",
             lambda: len({g.split(".")[0] for g in overlay.listing("/data/good_data")} & set(stems)) == files,
             300, every=2)
    per_minute = files / ((time.monotonic() - started) / 60)
    ((triggered_at,),) = overlay.db.rows("SELECT now()", database="airflow")
    overlay.airflow.pause(PREDICTION_DAG, False)
    overlay.airflow.trigger(PREDICTION_DAG)
    predicted = wait_for("the prediction run",
                         lambda: when(overlay.predicted(stems), lambda p: len(p) == files),
                         FLOW_SECONDS, every=2)
    # the first run after the unpause (the manual one or a scheduled one) predicted the whole batch
    start, end = overlay.db.rows(
        "SELECT start_date, end_date FROM task_instance WHERE dag_id = %s AND task_id = 'make_predictions' "
        "AND state = 'success' AND start_date >= %s ORDER BY start_date LIMIT 1",
        (PREDICTION_DAG, triggered_at), database="airflow")[0]
    # every row the run stored (files left from before included), over the task's own duration
    ((stored,),) = overlay.db.rows("SELECT count(*) FROM predictions WHERE source = 'scheduled' "
                                   "AND created_at BETWEEN %s AND %s", (start, end))
    assert stored >= sum(s for _, _, s in predicted.values()), (stored, predicted)
    seconds = (end - start).total_seconds()
    return per_minute, stored / float(seconds)


def throughput(overlay: Overlay) -> list[str]:
    """The figures of the note, each pair at the same offered load in the same run."""
    lines = []
    files, rows = 12, 200
    overlay.clear_raw_data()
    for workers in (1, 2):
        per_minute, per_second = ingestion_throughput(overlay, workers, files, rows)
        lines.append(f"{workers} Celery worker(s): {per_minute:.1f} files ingested per minute "
                     f"({files} files of {rows} rows at once, one run each); {per_second:.0f} scheduled "
                     f"predictions per second (one prediction run over those files)")
        log(lines[-1])
    threads, calls, records = 8, 60, 1
    for replicas in (1, 2):
        scale(overlay, "api", replicas)
        time.sleep(6)  # HAProxy's checks (every 2 s, rise 2) see the replica set as it is now
        load = client_load(overlay.api_url, f"bench-r{replicas}-{int(time.time())}", threads, calls, records,
                           token=overlay.api_token)
        assert not load.failed, load.failed[:3]
        lines.append(f"{replicas} API replica(s): {load.calls / load.seconds:.0f} POST /predict per second "
                     f"({threads} concurrent clients x {calls} calls of {records} record, through the load "
                     f"balancer on 127.0.0.1)")
        log(lines[-1])
    return lines


def replicas_follow_the_registry(overlay: Overlay) -> str:
    """Each API replica, asked directly inside its container, serves the registry's champion."""
    script = "\n".join((
        "import json, os, urllib.request",
        "from core.settings import ApiAccessSettings",
        "token = ApiAccessSettings().token_value()",  # API_TOKEN_FILE, as the replica reads it
        "headers = {'Authorization': 'Bearer ' + token} if token else {}",
        "request = urllib.request.Request('http://127.0.0.1:8000/model', headers=headers)",
        "print(json.dumps(json.load(urllib.request.urlopen(request, timeout=10))['champion']))",
    ))
    served = {}
    for replica in overlay.running("api"):
        out = subprocess.run(["docker", "exec", replica.id, "python", "-c", script], capture_output=True,
                             text=True, check=True).stdout
        served[replica.name] = json.loads(out)
    assert len(served) >= 2 and all(s["registry_version"] is not None for s in served.values()), served
    assert len({json.dumps(s, sort_keys=True) for s in served.values()}) == 1, served
    champion = next(iter(served.values()))
    return (f"each of the {len(served)} API replicas serves the registry's champion (version "
            f"{champion['registry_version']}, model_version {champion['model_version']}), read from its own "
            "GET /model inside its container")


def prove_the_overlay(overlay: Overlay, prometheus_url: str) -> list[str]:
    """The overlay's proofs (scenarios 1-3 and Prometheus), one line each for the summary."""
    proofs = [prometheus_scrapes(prometheus_url, len(overlay.running("api"))),
              replicas_follow_the_registry(overlay)]
    overlay.clear_raw_data()  # the seeded files: the scenarios drop their own
    worker_killed_mid_task(overlay, proofs)
    replica_killed_under_load(overlay, proofs)
    broker_restarted_with_work_queued(overlay, proofs)
    return proofs

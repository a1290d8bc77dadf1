"""10,000 records through POST /predict end to end vs the bare work on the same rows.

    python -m bench.bench_api_batch

Floor, measured in the same run on the same rows, interleaved with the API requests so that the
machine's load hits both alike: the bare ONNX scoring (model/predictor.py: column-wise feeds, the
graph, the decision rule, reason codes) plus a COPY of the rows (features, label, probability,
reason columns) into a scratch table shaped like `predictions` with the API's binary COPY,
committed, on an open connection.
The API figure is one HTTP request (body encoded once beforehand) until the whole response is
received: parsing, validation, scoring, the transaction, the response. Goal: at most 1.3x, for the
request a batch client sends (`?echo=false`: the answer without the echoed features and reasons,
which the prediction job does not read); the default answer, echoing them, is printed beside it.

Also printed: the added cost of reason codes per request (scoring, COPY and encoding them in the
answer, with vs without, as a share of the API request; goal <= 10 %) and, as the reference line,
the same floor with the old scikit-learn scoring (records -> pandas frame -> pipeline).
"""

from __future__ import annotations

import gc
import json
import statistics
from typing import Any

import httpx
import psycopg
import pydantic_core

from bench import _common
from db.models import REASON_COLUMNS
from db.predictions import binary_copy_types, reason_codes
from model.contract import FEATURE_NAMES, IDENTIFIER
from model.predictor import Predictor
from model.reasons import stored_values

ROWS = 10_000
REPEATS = 9
COLUMNS = ["source", "model_version", "predicted_label", "churn_probability", IDENTIFIER, *FEATURE_NAMES]


def copy_rows(conn: psycopg.Connection, columns: list[str], rows: Any) -> None:
    """The API's COPY (binary, same column types) into the scratch table, committed."""
    statement = f"COPY bench_copy ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(binary_copy_types(tuple(columns)))
        for row in rows:
            copy.write_row(row)
    conn.commit()


def base_rows(
    predictor: Predictor, records: list[dict], labels: list[int], probabilities: list[float],
) -> Any:
    return (
        ("scheduled", predictor.version, label, probability, record[IDENTIFIER],
         *[record[name] for name in FEATURE_NAMES])
        for record, label, probability in zip(records, labels, probabilities, strict=True)
    )


def bare_score_and_copy(predictor: Predictor, records: list[dict], conn: psycopg.Connection,
                        reasons: bool = True, answer: bool = False) -> None:
    """On an open connection, like the API's pooled ones: connecting is not part of the work.

    With `answer`, also encode the reason codes as the API's answer carries them (for their cost)."""
    scores = predictor.score(records, reasons=reasons)
    rows = base_rows(predictor, records, scores.labels.tolist(), scores.probabilities.tolist())
    if scores.reasons is None:
        copy_rows(conn, COLUMNS, rows)
        return
    stored = stored_values(scores.reasons)
    copy_rows(conn, [*COLUMNS, *REASON_COLUMNS], (
        (*row, *reason) for row, reason in zip(rows, stored, strict=True)
    ))
    if answer:
        encode_reasons(records, stored)


def encode_reasons(records: list[dict], stored: list[list[Any]]) -> bytes:
    """The part of the answer reason codes add: each prediction's reasons, encoded like the API's
    (three {feature, value, contribution} objects and the rest)."""
    return pydantic_core.to_json([
        {"reasons": reason_codes(values, record), "rest_contribution": values[-1]}
        for record, values in zip(records, stored, strict=True)
    ])


def sklearn_score_and_copy(predictor: Predictor, records: list[dict], conn: psycopg.Connection) -> None:
    """The old path: scikit-learn scoring (no reason codes), then the same COPY."""
    probabilities = predictor.sklearn_predict_proba(records)
    labels = predictor.decide(probabilities)
    copy_rows(conn, COLUMNS, base_rows(predictor, records, labels, probabilities.tolist()))


def main() -> None:
    predictor = Predictor()
    records = _common.sample_records(ROWS)
    body = json.dumps({"source": "scheduled", "records": records}).encode()
    with _common.scratch_database() as url:
        libpq = _common.libpq_url(url)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_copy (LIKE predictions INCLUDING ALL)")
        api, stop = _common.start_api_server(url, env={"API_TOKEN": ""})
        try:
            with httpx.Client(base_url=api, timeout=120) as client, psycopg.connect(libpq) as conn:
                def through_api(echo: bool) -> None:
                    response = client.post("/predict", content=body, params={"echo": str(echo).lower()},
                                           headers={"content-type": "application/json"})
                    response.raise_for_status()

                work = {
                    "api": lambda: through_api(echo=False),
                    "api echoing": lambda: through_api(echo=True),
                    "floor": lambda: bare_score_and_copy(predictor, records, conn),
                    "with reasons": lambda: bare_score_and_copy(predictor, records, conn, answer=True),
                    "no reasons": lambda: bare_score_and_copy(predictor, records, conn, reasons=False),
                    "sklearn": lambda: sklearn_score_and_copy(predictor, records, conn),
                }
                for run in work.values():  # warm-up: first connections, lazy imports
                    run()
                # as the API does after startup (api/main.py): the sample and the loaded libraries
                # out of the collector's reach, so that no run pays a full pass over them
                gc.collect()
                gc.freeze()
                times: dict[str, list[float]] = {name: [] for name in work}
                for _ in range(REPEATS):  # interleaved, so that all see the same machine load
                    for name, run in work.items():
                        times[name].append(_common.timed(run))
        finally:
            stop()
    api_s, echoing, floor, _, no_reasons, sklearn = (sorted(times[name])[REPEATS // 2] for name in work)
    # each repeat measured both back to back: the median of the differences, not of each side
    added = statistics.median(a - b for a, b in zip(times["with reasons"], times["no reasons"], strict=True))
    print(f"api batch {ROWS:,} records (?echo=false): {api_s / floor:.2f}x the bare ONNX scoring + COPY "
          f"(api {api_s * 1000:.0f} ms, floor {floor * 1000:.0f} ms, median of {REPEATS}; goal <= 1.3x"
          f"{'' if api_s / floor <= 1.3 else ': MISSED on this machine'})")
    print(f"api batch {ROWS:,} records echoing every feature and reason (the default answer): "
          f"{echoing / floor:.2f}x the floor ({echoing * 1000:.0f} ms)")
    print(f"api batch {ROWS:,} records, reason codes: {100 * added / api_s:+.1f} % of the request "
          f"({added * 1000:+.0f} ms: scoring, COPY and encoding them in the answer, median of the paired "
          f"differences; scoring + COPY {no_reasons * 1000:.0f} ms without them; goal <= 10 %)")
    print(f"api batch {ROWS:,} records, reference: the old scikit-learn scoring + COPY is "
          f"{sklearn / floor:.2f}x the floor ({sklearn * 1000:.0f} ms) and {sklearn / api_s:.2f}x the "
          "whole API request")


if __name__ == "__main__":
    main()

"""Code and behaviour tests of training and the predictor."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.contract import FEATURE_NAMES, IDENTIFIER, default_record
from model.data import load_dataset
from model.predictor import ModelNotTrainedError, Predictor
from model.train import CONFUSION_FILE, METADATA_FILE, MODEL_FILE, exclude_holdout, main, row_keys, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    main(["--out", str(out)])
    return out


def test_cli_writes_every_artifact(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.name for p in trained.iterdir()} >= {MODEL_FILE, METADATA_FILE, CONFUSION_FILE}
    assert (trained / CONFUSION_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metadata = json.loads((trained / METADATA_FILE).read_text())
    assert metadata["features"] == list(FEATURE_NAMES)
    assert set(metadata["metrics"]) == {"roc_auc", "f1", "precision", "recall", "threshold"}
    assert metadata["model_version"].startswith("churn-lr-")
    assert 0.2 < metadata["training_churn_rate"] < 0.3


def test_baseline_covers_every_feature(trained: Path) -> None:
    baseline = json.loads((trained / METADATA_FILE).read_text())["baseline"]
    assert set(baseline) == set(FEATURE_NAMES)
    tenure = baseline["tenure"]
    assert tenure["kind"] == "numeric"
    assert len(tenure["bin_proportions"]) == len(tenure["bin_edges"]) - 1
    assert sum(tenure["bin_proportions"]) == pytest.approx(1.0)
    contract_shares = baseline["contract"]["proportions"]
    assert set(contract_shares) == {"Month-to-month", "One year", "Two year"}
    assert sum(contract_shares.values()) == pytest.approx(1.0)


def test_holdout_auc_at_least_080(trained: Path) -> None:
    metrics = json.loads((trained / METADATA_FILE).read_text())["metrics"]
    assert metrics["roc_auc"] >= 0.80


def test_same_seed_same_model(trained: Path, tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    first = json.loads((trained / METADATA_FILE).read_text())
    second = json.loads((tmp_path / METADATA_FILE).read_text())
    assert first["model_version"] == second["model_version"]
    assert first["metrics"] == second["metrics"]


def test_reloaded_model_predicts_the_same(trained: Path) -> None:
    records = load_dataset().head(200)[list(FEATURE_NAMES)].to_dict("records")
    first = Predictor(trained).predict_proba(records)
    second = Predictor(trained).predict_proba(records)
    np.testing.assert_array_equal(first, second)
    assert ((first >= 0) & (first <= 1)).all()


def test_missing_artifacts_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotTrainedError, match=r"model\.train"):
        Predictor(tmp_path)


def test_unseen_category_does_not_break(trained: Path) -> None:
    record = default_record() | {"payment_method": "Cryptocurrency"}
    assert 0 <= Predictor(trained).predict([record])[0].probability <= 1


def test_decision_rule_labels_churn_from_the_threshold_up(trained: Path) -> None:
    """One rule for every caller (the API, the seeder): probability >= threshold means churn."""
    predictor = Predictor(trained)
    t = predictor.threshold
    around = np.array([0.0, np.nextafter(t, 0), t, np.nextafter(t, 1), 1.0])
    assert predictor.decide(around) == [0, 0, 1, 1, 1]
    records = load_dataset().head(50)[list(FEATURE_NAMES)].to_dict("records")
    scores = predictor.predict(records)
    assert [s.label for s in scores] == predictor.decide(predictor.predict_proba(records))
    assert {s.label for s in scores} == {0, 1}  # both sides of the threshold were exercised


def test_invariance_customer_identifier(trained: Path) -> None:
    predictor = Predictor(trained)
    base = default_record()
    a = predictor.predict([base | {IDENTIFIER: "C00001"}])[0]
    b = predictor.predict([base | {IDENTIFIER: "C99999"}])[0]
    assert a == b


def test_direction_month_to_month_riskier_than_two_year(trained: Path) -> None:
    predictor = Predictor(trained)
    customers = load_dataset().sample(100, random_state=0)[list(FEATURE_NAMES)].to_dict("records")
    monthly = predictor.predict_proba([c | {"contract": "Month-to-month"} for c in customers])
    two_year = predictor.predict_proba([c | {"contract": "Two year"} for c in customers])
    assert (monthly > two_year).all()


def test_version_changes_with_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new allowed value (or range, or type) is a different model even on the same data."""
    from model import train
    from model.data import DATASET_PATH

    before = train.model_version(DATASET_PATH)
    schema = train.record_json_schema()
    schema["properties"]["contract"]["enum"].append("Three year")
    monkeypatch.setattr(train, "record_json_schema", lambda: schema)
    assert train.model_version(DATASET_PATH) != before


def test_retraining_never_trains_on_a_holdout_customer_whatever_its_id(tmp_path: Path) -> None:
    """Every customer of the dataset comes back as a labelled serving row under a scenario id
    (`SCN1-A-<id>`, as scripts/concept_drift_scenario.py scores them), read back from the database
    as plain values: the old id rule excluded none of the holdout; the holdout's identity (ids and
    feature-value keys recorded in the metadata) excludes every one of them."""
    dataset = load_dataset()
    served = pd.DataFrame(dataset.astype(object).where(dataset.notna(), None).to_dict("records"))
    served[IDENTIFIER] = "SCN1-A-" + served[IDENTIFIER]
    metadata = train(out_dir=tmp_path, extra_rows=served)
    holdout_ids, holdout_keys = metadata["holdout_customer_ids"], set(metadata["holdout_row_keys"])
    assert len(holdout_ids) == metadata["holdout_rows"] == len(metadata["holdout_row_keys"])
    assert not served[IDENTIFIER].isin(holdout_ids).any()  # the old rule: no holdout customer left out
    holdout = dataset[dataset[IDENTIFIER].isin(holdout_ids)]
    kept = exclude_holdout(served, holdout)
    assert not set(row_keys(kept)) & holdout_keys  # no holdout customer is trained on
    original_ids = kept[IDENTIFIER].str.removeprefix("SCN1-A-")
    assert not original_ids.isin(holdout_ids).any()
    assert metadata["serving_rows_added"] == len(kept)
    assert metadata["serving_rows_excluded"] == len(served) - len(kept) >= metadata["holdout_rows"]
    assert set(row_keys(holdout)) == holdout_keys  # the keys are those of the holdout drawn

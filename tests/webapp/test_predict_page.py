"""The Predict page in AppTest, against the real API and database."""

from __future__ import annotations

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest

from model.contract import FEATURE_NAMES, default_record
from tests.webapp.conftest import APP_FILE, rendered, shown, stored_predictions, unused_url

RUN_TIMEOUT = 60


def open_predict_page() -> AppTest:
    at = AppTest.from_file(APP_FILE, default_timeout=RUN_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Predict churn"
    return at


def csv_content(rows: list[dict], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_the_form_has_one_widget_per_feature_with_schema_defaults(webapp_env: str) -> None:
    at = open_predict_page()
    keys = {w.key for w in [*at.selectbox, *at.number_input, *at.text_input]}
    assert {f"field_{name}" for name in FEATURE_NAMES} <= keys
    assert at.number_input(key="field_tenure").value == default_record()["tenure"]
    assert at.selectbox(key="field_contract").value == default_record()["contract"]


def test_form_submit_shows_the_prediction_and_a_rerun_never_posts_again(webapp_env: str) -> None:
    at = open_predict_page()
    at.number_input(key="field_tenure").set_value(2)
    at.selectbox(key="field_contract").set_value("Month-to-month")
    at.selectbox(key="field_internet_service").set_value("Fiber optic")
    at.number_input(key="field_monthly_charges").set_value(95.0)
    at.number_input(key="field_total_charges").set_value(190.0)
    at.text_input(key="field_customer_id").input("C-FORM-1")
    at.button(key="FormSubmitter:single_customer-Predict").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)

    label = at.metric[0].value
    assert label in ("Churn", "Stays")
    table = at.dataframe[0].value
    assert table.loc[0, "tenure"] == 2 and table.loc[0, "customer_id"] == "C-FORM-1"
    assert table.loc[0, "prediction"] == label
    assert 0.0 <= table.loc[0, "churn_probability"] <= 1.0
    assert stored_predictions() == 1
    why = at.table[0].value  # the reason codes: feature, its value, contribution, effect
    assert len(why) == 3 and set(why["feature"]) <= set(table.columns)
    assert why["contribution"].abs().is_monotonic_decreasing
    assert table.loc[0, "why"].startswith(f"{why.loc[0, 'feature']} = ")  # the same, in one cell
    for _, reason in why.iterrows():
        assert reason["value"] == str(table.loc[0, reason["feature"]])
        assert reason["effect"] == ("raises the churn risk" if reason["contribution"] > 0
                                    else "lowers the churn risk")

    at.run()  # a rerun (any interaction) shows the result again without posting it
    at.run()
    assert stored_predictions() == 1
    assert at.metric[0].value == label

    at.button(key="FormSubmitter:single_customer-Predict").click().run()  # a new click is a new prediction
    assert stored_predictions() == 2


def test_an_empty_total_charges_is_predicted(webapp_env: str) -> None:
    at = open_predict_page()
    at.number_input(key="field_tenure").set_value(0)
    at.checkbox(key="field_total_charges_empty").check()
    at.button(key="FormSubmitter:single_customer-Predict").click().run()
    assert not at.error, at.error
    assert at.dataframe[0].value["total_charges"].isna().tolist() == [True]
    assert stored_predictions() == 1


def test_a_customer_the_api_refuses_gets_the_reason_and_nothing_is_stored(webapp_env: str) -> None:
    at = open_predict_page()
    at.number_input(key="field_tenure").set_value(60)
    at.number_input(key="field_monthly_charges").set_value(100.0)
    at.number_input(key="field_total_charges").set_value(10.0)
    at.button(key="FormSubmitter:single_customer-Predict").click().run()
    assert "refused this customer (total_charges: total charges 10 far below" in shown(at.error[0].value)
    assert not at.metric and stored_predictions() == 0


def test_upload_predicts_valid_rows_names_invalid_ones_and_never_posts_twice(webapp_env: str) -> None:
    good = [{**default_record(), "customer_id": f"C{i}", "churn": "No"} for i in range(6)]
    good[1]["tenure"] = -3  # row 3 of the file
    good[4]["payment_method"] = "Cash"  # row 6
    columns = ["customer_id", *FEATURE_NAMES, "churn", "region"]
    at = open_predict_page()
    at.file_uploader(key="upload_file").set_value(("customers.csv", csv_content(good, columns), "text/csv"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)

    assert "customers.csv: 6 rows, 4 customers predicted, 2 invalid rows not sent." in at.warning[0].value
    notes = " ".join(shown(info.value) for info in at.info)
    assert "`churn`" in notes and "`region`" in notes
    errors = at.dataframe[0].value
    assert errors["row"].tolist() == [3, 6]
    assert errors["column"].tolist() == ["tenure", "payment_method"]
    results = at.dataframe[1].value
    assert results["row"].tolist() == [2, 4, 5, 7]
    assert results["customer_id"].tolist() == ["C0", "C2", "C3", "C5"]
    assert set(results["prediction"]) <= {"Churn", "Stays"}
    assert all(why.count(" · ") == 2 for why in results["why"])  # three reasons per customer
    assert at.get("download_button")[0].label == "Download predictions (CSV)"
    assert stored_predictions() == 4

    at.run()  # reruns keep the results and post nothing
    at.run()
    assert stored_predictions() == 4
    assert at.dataframe[1].value["row"].tolist() == [2, 4, 5, 7]


def test_upload_without_required_columns_names_them_and_sends_nothing(webapp_env: str) -> None:
    columns = [name for name in FEATURE_NAMES if name not in ("tenure", "contract")]
    at = open_predict_page()
    at.file_uploader(key="upload_file").set_value(
        ("partial.csv", csv_content([default_record()], columns), "text/csv"),
    )
    at.run()
    assert "partial.csv lacks required columns: `tenure`, `contract`. Nothing was sent." in at.error[0].value
    assert stored_predictions() == 0


def test_rows_the_api_refuses_are_named_and_the_rest_is_stored(webapp_env: str) -> None:
    """Cross-field rules are not in the JSON schema: the API refuses those rows, the others go on."""
    rows = [default_record() for _ in range(3)]
    rows[1] = {**rows[1], "tenure": 60, "monthly_charges": 100.0, "total_charges": 10.0}
    at = open_predict_page()
    content = csv_content(rows, list(FEATURE_NAMES))
    at.file_uploader(key="upload_file").set_value(("mixed.csv", content, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    errors = at.dataframe[0].value
    assert errors["row"].tolist() == [3] and errors["column"].tolist() == ["total_charges"]
    assert at.dataframe[1].value["row"].tolist() == [2, 4]
    assert stored_predictions() == 2


def test_api_down_gives_a_readable_error_not_a_traceback(
    webapp_env: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    nobody = unused_url(webapp_env)
    monkeypatch.setenv("API_URL", nobody)
    at = AppTest.from_file(APP_FILE, default_timeout=RUN_TIMEOUT).run()
    assert not at.exception
    assert "cannot be reached" in shown(at.error[0].value) and nobody in shown(at.error[0].value)


PIXEL_NAME = "![p](http://127.0.0.1:9/pixel).csv"


def _markdown_bodies(at: AppTest) -> list[str]:
    """Every Markdown body on the page: messages, captions, markdown."""
    elements = [*at.error, *at.warning, *at.success, *at.info, *at.caption, *at.markdown]
    return [element.value for element in elements]


def test_a_file_name_and_column_names_made_of_markdown_are_shown_as_text(webapp_env: str) -> None:
    """A file named like a Markdown image must not make the browser fetch the URL: shown as typed."""
    rows = [{**default_record(), "**bold**": "x", "`![q](http://127.0.0.1:9/q)`": "y"}]
    columns = [*FEATURE_NAMES, "**bold**", "`![q](http://127.0.0.1:9/q)`"]
    at = open_predict_page()
    at.file_uploader(key="upload_file").set_value((PIXEL_NAME, csv_content(rows, columns), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    bodies = _markdown_bodies(at)
    summary = f"{PIXEL_NAME}: 1 rows, 1 customers predicted"
    assert any(shown(body).startswith(summary) for body in bodies), bodies
    notes = " ".join(shown(info.value) for info in at.info)
    assert "**bold**" in notes and "`![q](http://127.0.0.1:9/q)`" in notes
    for body in bodies:
        html = rendered(body)
        assert "<img" not in html and "<a " not in html and "<strong>bold" not in html, html


def test_a_refused_file_named_like_markdown_is_named_as_text(webapp_env: str) -> None:
    at = open_predict_page()
    at.file_uploader(key="upload_file").set_value((PIXEL_NAME, b"", "text/csv"))
    at.run()
    assert not at.exception, at.exception
    assert at.error and shown(at.error[0].value).startswith(PIXEL_NAME)
    assert all("<img" not in rendered(body) for body in _markdown_bodies(at))

"""Predict page: one customer from a form, or many from a CSV file.

The form and the CSV check are built from the record schema the API publishes (GET /model).
Predictions are sent through `webapp.submissions`, so a Streamlit rerun never posts them again.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, cast

import streamlit as st

from core.api_client import ApiError
from webapp import api_cache
from webapp.csv_check import ROW_NUMBER_NOTE, CsvCheck, RowError, check_csv
from webapp.forms import FormField, build_form_fields, group_fields, record_from_form
from webapp.markdown_text import escape_markdown
from webapp.results import answered_by, churn_share, prediction_frame, probability_histogram, reasons_frame
from webapp.submissions import Submission, current_submission, send_pending_chunks, submit
from webapp.widgets import prediction_columns

SINGLE_SLOT = "single_prediction"
UPLOAD_SLOT = "upload_prediction"
FORM_COLUMNS = 3


def session_state() -> MutableMapping[str, Any]:
    """Streamlit's session state as the mapping the submission functions take (string keys)."""
    return cast("MutableMapping[str, Any]", st.session_state)


def main() -> None:
    st.title("Predict churn")
    try:
        info = api_cache.model_info()
    except ApiError as exc:
        st.error(escape_markdown(exc.message))
        return
    try:  # the caption names the version answering now (the schema above may be minutes old)
        now = api_cache.served_model()
    except ApiError:
        now = None
    if now is not None:
        st.caption(
            f"Model `{escape_markdown(str(now.get('model_version')))}` answers now: a customer is predicted "
            f"to churn when the churn probability reaches {now.get('threshold', 0.5):.2f}."
        )
    schema = info["record_schema"]
    one_tab, many_tab = st.tabs(["One customer", "Many customers (CSV file)"])
    with one_tab:
        single_customer(schema)
    with many_tab:
        many_customers(schema)


# --- one customer -------------------------------------------------------------------------------

def single_customer(schema: dict[str, Any]) -> None:
    fields = build_form_fields(schema)
    with st.form("single_customer"):
        values: dict[str, Any] = {}
        for group, members in group_fields(fields).items():
            st.markdown(f"**{group}**")
            columns = st.columns(FORM_COLUMNS)
            for position, form_field in enumerate(members):
                with columns[position % FORM_COLUMNS]:
                    values[form_field.name] = field_widget(form_field)
        clicked = st.form_submit_button("Predict", type="primary")
    if clicked:
        clicks = int(st.session_state.get("single_clicks", 0)) + 1
        st.session_state["single_clicks"] = clicks
        submit(
            session_state(), SINGLE_SLOT, action=f"click-{clicks}",
            records=[record_from_form(fields, values)], record_rows=[1], file_name=None, chunk_size=1,
        )
    submission = current_submission(session_state(), SINGLE_SLOT)
    if submission is not None:
        send_and_report(submission, progress=False)
        show_single_result(submission)


def field_widget(form_field: FormField) -> Any:
    """The widget for one schema property; its value as the user left it."""
    key = f"field_{form_field.name}"
    if form_field.kind == "choice":
        options = list(form_field.options)
        return st.selectbox(
            form_field.label, options, index=options.index(form_field.default) if options else None,
            format_func=form_field.option_label, help=form_field.help, key=key,
        )
    if form_field.kind == "text":
        return st.text_input(form_field.label, value=form_field.default or "", help=form_field.help, key=key)
    value = number_widget(form_field, key)
    if form_field.nullable and st.checkbox(
        f"{form_field.label}: leave empty", key=f"{key}_empty",
        help="Sends no value (null), as for a customer in the first month.",
    ):
        return None
    return value


def number_widget(form_field: FormField, key: str) -> float | int:
    integer = form_field.kind == "integer"
    number = int if integer else float
    bound = {
        name: number(limit)
        for name, limit in (("min_value", form_field.minimum), ("max_value", form_field.maximum))
        if limit is not None
    }
    default = form_field.default if form_field.default is not None else bound.get("min_value", 0)
    return st.number_input(  # type: ignore[call-overload, no-any-return]
        form_field.label, value=number(default), step=number(1), help=form_field.help, key=key,
        format=None if integer else "%.2f", **bound,
    )


def show_single_result(submission: Submission) -> None:
    if submission.rejected:  # a rule across fields that the schema cannot express
        reasons = "; ".join(f"{error.column}: {error.reason}" for error in submission.rejected)
        reasons = escape_markdown(reasons)
        st.error(f"The prediction service refused this customer ({reasons}). Nothing was stored.")
    if not submission.predictions:
        return
    prediction = submission.predictions[0]
    churn = prediction.get("label") == 1
    left, right = st.columns(2)
    left.metric("Prediction", "Churn" if churn else "Stays")
    right.metric("Churn probability", f"{prediction.get('churn_probability', 0):.1%}")
    show_answered_by(submission)
    st.dataframe(prediction_frame([prediction]), hide_index=True, column_config=prediction_columns())
    if prediction.get("reasons"):
        st.markdown("**Why**: the three features that moved this score most (contribution to the "
                    "log-odds of churn; positive raises the risk)")
        # a static table (3 rows, nothing to sort or scroll), not one more dataframe grid
        st.table(reasons_frame(prediction["reasons"]).style.format({"contribution": "{:+.2f}"}).hide())


# --- many customers -----------------------------------------------------------------------------

def many_customers(schema: dict[str, Any]) -> None:
    required = ", ".join(f"`{name}`" for name in schema.get("required", []))
    uploaded = st.file_uploader(
        "Customer records (CSV, one customer per row, header row first)", type=["csv"], key="upload_file",
        help=f"Required columns: {required}. An optional `customer_id` column is kept with each prediction.",
    )
    if uploaded is None:
        st.caption(f"Required columns: {required}.")
        return
    check = checked_upload(uploaded.file_id, uploaded.name, uploaded.getvalue(), schema)
    if not show_blocking_problems(check):
        return
    for note in check.notes():
        st.info(escape_markdown(note))
    submission = submit(
        session_state(), UPLOAD_SLOT, action=uploaded.file_id, records=check.records,
        record_rows=check.record_rows, file_name=uploaded.name,
        chunk_size=api_cache.client_settings().predict_chunk_size,
    )
    summary = st.container()
    send_and_report(submission, progress=True)
    errors = [*check.row_errors, *submission.rejected]
    with summary:
        show_upload_summary(check, submission, errors)
    show_row_errors(errors)
    show_many_results(submission)


def checked_upload(file_id: str, file_name: str, content: bytes, schema: dict[str, Any]) -> CsvCheck:
    """The check of this upload, computed once per uploaded file (reruns reuse it)."""
    cached = st.session_state.get("upload_check")
    if cached is not None and cached[0] == file_id:
        return cached[1]
    check = check_csv(content, schema, file_name=file_name)
    st.session_state["upload_check"] = (file_id, check)
    return check


def show_blocking_problems(check: CsvCheck) -> bool:
    """Say why nothing can be sent; True when the valid rows can go on."""
    if check.file_error:
        st.error(f"{escape_markdown(check.file_name)}: {escape_markdown(check.file_error)} Nothing was sent.")
        return False
    if check.missing_columns:
        names = ", ".join(f"`{name}`" for name in check.missing_columns)
        st.error(f"{escape_markdown(check.file_name)} lacks required columns: {names}. Nothing was sent.")
        return False
    if not check.records:
        st.error(f"None of the {check.total_rows} rows of {escape_markdown(check.file_name)} is valid. "
                 "Nothing was sent.")
        show_row_errors(check.row_errors)
        return False
    return True


def show_upload_summary(check: CsvCheck, submission: Submission, errors: list[RowError]) -> None:
    invalid_rows = len({error.row for error in errors})
    message = (f"{escape_markdown(check.file_name)}: {check.total_rows} rows, "
               f"{len(submission.predictions)} customers predicted")
    if invalid_rows:
        message += f", {invalid_rows} invalid rows not sent"
    if invalid_rows:
        st.warning(message + ".")
    else:
        st.success(message + ".")


def show_row_errors(errors: list[RowError]) -> None:
    if not errors:
        return
    st.markdown(f"**Invalid rows ({len({e.row for e in errors})}), not sent**")
    st.dataframe(
        [{"row": e.row, "column": e.column, "problem": e.reason} for e in sorted(errors, key=row_of)],
        hide_index=True,
    )
    st.caption(ROW_NUMBER_NOTE)


def row_of(error: RowError) -> int:
    return error.row


def show_many_results(submission: Submission) -> None:
    if not submission.predictions:
        return
    frame = prediction_frame(submission.predictions, submission.predicted_rows)
    share = churn_share(submission.predictions) or 0.0
    churners = sum(1 for p in submission.predictions if p.get("label") == 1)
    left, right = st.columns(2)
    left.metric("Predicted to churn", f"{share:.1%}", help=f"{churners} of {len(frame)} customers")
    right.metric("Customers predicted", len(frame))
    show_answered_by(submission)
    st.markdown("**Churn probability distribution**")
    st.bar_chart(
        probability_histogram([p["churn_probability"] for p in submission.predictions]),
        x_label="churn probability", y_label="customers", height=220,
    )
    st.markdown("**Predictions**")
    st.dataframe(frame, hide_index=True, column_config=prediction_columns())
    st.download_button(
        "Download predictions (CSV)", frame.to_csv(index=False).encode(),
        file_name=f"predictions-{submission.file_name or 'upload.csv'}", mime="text/csv",
        key="download_predictions",
    )


def show_answered_by(submission: Submission) -> None:
    """The model version(s) that answered these predictions, from the API's answers themselves."""
    said = answered_by(submission.predictions)
    if said is not None:
        st.caption(said)


# --- sending ------------------------------------------------------------------------------------

def send_and_report(submission: Submission, *, progress: bool) -> None:
    """Send what is not sent yet (nothing on a plain rerun), then show a failure if there was one."""
    if not submission.finished:
        bar = st.progress(0.0, text="Predicting...") if progress else None

        def on_progress(done: int, total: int) -> None:
            if bar is not None:
                bar.progress(done / total, text=f"Predicting: chunk {done} of {total}")

        with st.spinner("Asking the model..."):
            send_pending_chunks(submission, api_cache.api_client(), on_progress)
        if bar is not None:
            bar.empty()
    if submission.error:
        st.error(escape_markdown(submission.error))


main()

"""Display settings shared by the pages."""

from __future__ import annotations

from typing import Any

import streamlit as st

from webapp.results import PROBABILITY_COLUMN


def prediction_columns() -> dict[str, Any]:
    """Churn probability as a bar with its percentage, in every table of predictions."""
    return {
        PROBABILITY_COLUMN: st.column_config.ProgressColumn(
            "churn probability", format="percent", min_value=0.0, max_value=1.0,
        ),
    }

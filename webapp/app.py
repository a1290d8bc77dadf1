"""Entry file of the webapp: `streamlit run webapp/app.py`. Two pages, Predict and Past predictions."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# The pages import `webapp.*` and `core.*`: the project is installed (`pip install -e .`), so they
# import from any working folder, although Streamlit puts only this file's folder on sys.path.
PAGES_DIR = Path(__file__).resolve().parent / "pages"


def main() -> None:
    st.set_page_config(page_title="Churn prediction", page_icon=":material/insights:", layout="wide")
    # Users see the app, not the developer menu; an unforeseen bug shows its type, never a traceback.
    st.set_option("client.toolbarMode", "viewer")
    st.set_option("client.showErrorDetails", "type")
    navigation = st.navigation([
        st.Page(PAGES_DIR / "predict.py", title="Predict", icon=":material/person_search:", default=True),
        st.Page(PAGES_DIR / "past_predictions.py", title="Past predictions", icon=":material/history:"),
    ])
    navigation.run()


main()

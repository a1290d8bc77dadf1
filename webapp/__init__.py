"""Streamlit webapp: on-demand predictions and past predictions, through the API only."""

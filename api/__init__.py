"""The model service: FastAPI app that scores customer records and serves stored predictions."""

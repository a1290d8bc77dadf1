"""One router per resource: predictions, model, health."""

"""The churn model: feature contract, training, predictor."""

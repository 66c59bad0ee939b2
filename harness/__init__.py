"""The checker: runs strategies inside the model under Hypothesis, reports, the CLI."""

"""The benchmark matrix: the grid of cases, their checks and thresholds, the history,
the summary report and the regression gate, and the pytest plugin that runs them."""

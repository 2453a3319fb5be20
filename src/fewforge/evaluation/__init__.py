"""Scoring predictions, aggregating over seeds, and writing/showing results."""

from fewforge.evaluation.aggregate import Summary, aggregate, mean_std
from fewforge.evaluation.metrics import METRICS, accuracy, macro_f1, score
from fewforge.evaluation.report import format_summary_text, read_results, results_table, write_results

__all__ = [
    "METRICS",
    "Summary",
    "accuracy",
    "aggregate",
    "format_summary_text",
    "macro_f1",
    "mean_std",
    "read_results",
    "results_table",
    "score",
    "write_results",
]

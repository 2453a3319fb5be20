"""Scoring predictions, summaries over seeds with significance, results.json and tables, reports."""

from fewforge.evaluation.aggregate import mean_std, summarize
from fewforge.evaluation.metrics import METRICS, accuracy, macro_f1, per_example, primary_metric, score
from fewforge.evaluation.results import format_summary_text, read_results, results_table, write_results

__all__ = [
    "METRICS",
    "accuracy",
    "format_summary_text",
    "macro_f1",
    "mean_std",
    "per_example",
    "primary_metric",
    "read_results",
    "results_table",
    "score",
    "summarize",
    "write_results",
]

"""Result records shaped like a grid's cells, for the evaluation tests."""

from __future__ import annotations


def record(seed, accuracy, macro_f1=None, condition="real", learner="linear-probe", shots=16, task="bbc"):
    synthetic = condition != "real"
    metrics = {"accuracy": accuracy} | ({"macro_f1": macro_f1} if macro_f1 is not None else {})
    return {
        "cell": f"{task}/{shots}/{seed}/{learner}/{condition}",
        "task": task,
        "shots": shots,
        "seed": seed,
        "learner": learner,
        "condition": condition,
        "method": "zerogen" if synthetic else None,
        "per_label": 40 if synthetic else None,
        "metrics": metrics,
    }


def make_records():
    return [
        record(13, 0.80, 0.70),
        record(13, 0.90, 0.85, condition="real+synthetic"),
        record(21, 0.84, 0.76),
        record(21, 0.88, 0.86, condition="real+synthetic"),
        record(42, 0.82, 0.73),
    ]

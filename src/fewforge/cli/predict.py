from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fewforge.errors import DataError


def predict(
    model: Annotated[Path, typer.Option("--model", "-m", help="a model directory written by `fewforge train`")],
    input_file: Annotated[
        Optional[Path],
        typer.Option(
            "--input", "-i",
            help="texts to label: .txt (one per line; pairs tab-separated) or .jsonl with the task's fields; "
            "default: standard input",
        ),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write JSONL here instead of stdout")] = None,
) -> None:
    """Label texts with a trained model: one JSON line per input with its label and class probabilities
    (QA and text-to-text models: the answer span or output text as "prediction")."""
    from fewforge.files import write_lines
    from fewforge.learners.card import load_model

    learner = load_model(model)
    lines = (input_file.read_text(encoding="utf-8") if input_file else sys.stdin.read()).splitlines()
    jsonl = input_file is not None and input_file.suffix.lower() == ".jsonl"
    inputs = [_parse(line, n, learner.task.input_fields, jsonl) for n, line in enumerate(lines, 1) if line.strip()]
    if not inputs:
        raise DataError(f"no texts in {input_file or 'standard input'}", hint="give one text per line")
    if learner.task.is_classification:
        proba = learner.predict_proba(inputs)
        labels = learner.task.label_names
        records = [
            {
                "input": text,
                "label": labels[int(row.argmax())],
                "proba": {label: round(float(p), 5) for label, p in zip(labels, row)},
            }
            for text, row in zip(inputs, proba)
        ]
    else:
        records = [{"input": text, "prediction": p} for text, p in zip(inputs, learner.predict(inputs))]
    if output:
        write_lines(output, records)
        typer.echo(f"{len(records)} predictions → {output}", err=True)
    else:
        for record in records:
            typer.echo(json.dumps(record, ensure_ascii=False))


def _parse(line: str, number: int, fields: tuple[str, ...], jsonl: bool) -> Any:
    """One input: a string, or a tuple of strings for a pair task."""
    if jsonl:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {number}: not JSON ({exc.msg})", hint="one JSON object per line") from None
        missing = [f for f in fields if not isinstance(row.get(f), str)]
        if missing:
            raise DataError(f"line {number}: missing text field(s) {missing}", hint=f"the task reads {list(fields)}")
        values = tuple(row[f] for f in fields)
    else:
        values = tuple(line.split("\t")) if len(fields) > 1 else (line,)
    if len(values) != len(fields):
        raise DataError(
            f"line {number}: expected {len(fields)} tab-separated texts, got {len(values)}",
            hint=f"the task reads {', '.join(fields)}",
        )
    return values[0] if len(values) == 1 else values

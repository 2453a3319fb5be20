"""What a user's own examples file is: its columns, its task kind, its labels — inferred when no task
file is given — and its raw rows, read once so every problem can name the line it is on.

Accepted layouts, each declared by its task kind (`file_layouts`, tasks/kinds/); the first whose columns
are all present wins, longer layouts first; other columns are ignored:

    text_a, text_b, label                       sentence pair
    premise, hypothesis, label                  sentence pair
    sentence1, sentence2, label                 sentence pair
    context, question, answers                  extractive QA (SQuAD's `answers` object)
    text, label                                 single text
    source, target                              text-to-text

Files: .csv, .tsv (GLUE-style, no quoting), .jsonl, .parquet, or a folder saved by `datasets`. The
encoding is checked line by line before anything else: a file that mixes UTF-8 with another encoding,
or holds text that was decoded twice ("cafÃ©"), is named at its first such line, with the repaired
reading as the hint.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewforge.data.io import FORMATS
from fewforge.errors import DataError
from fewforge.tasks.kinds import KINDS
from fewforge.tasks.kinds.base import FileLayout


@dataclass(frozen=True)
class Layout(FileLayout):
    kind: str = ""

    def describe(self) -> str:
        return f"{','.join(self.columns)} ({self.kind})"


# Every registered kind's layouts (tasks/kinds/), those with more columns first: a file holding the
# columns of two layouts is the more specific one.
LAYOUTS: tuple[Layout, ...] = tuple(
    sorted(
        (Layout(**vars(layout), kind=name) for name, kind in KINDS.items() for layout in kind.file_layouts),
        key=lambda layout: -len(layout.columns),
    )
)


@dataclass
class RawRows:
    """The file as plain records, each with where it is ("file:line" or "file row N"), in file order:
    record i is the row `read_examples` turns into example i."""

    path: Path
    columns: list[str]
    records: list[dict[str, Any]]
    where: list[str]
    split: str | None = None  # the split read from a saved DatasetDict


def find_layout(raw: RawRows) -> Layout:
    present = set(raw.columns)
    for layout in LAYOUTS:
        if set(layout.columns) <= present:
            return layout
    raise DataError(
        f"{raw.path}: unknown layout (columns found: {', '.join(raw.columns) or 'none'})",
        hint="accepted layouts: " + "; ".join(layout.describe() for layout in LAYOUTS)
        + "; or pass --task FILE whose `columns:` maps its fields to yours",
    )


# -- reading ---------------------------------------------------------------------------------------------


def read_raw(path: Path) -> RawRows:
    """Every record of a CSV/TSV/JSONL/parquet file or a saved `datasets` folder, encodings checked."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found", hint="check the path of your examples file")
    if path.is_dir():
        return _read_dataset_dir(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}",
            hint=f"use one of {', '.join(FORMATS)} or a folder saved with datasets' save_to_disk",
        )
    if fmt == "parquet":
        return _read_parquet(path)
    lines = _decoded_lines(path)
    raw = _read_jsonl(path, lines) if fmt == "jsonl" else _read_delimited(path, lines, "\t" if fmt == "tsv" else ",")
    for record, where in zip(raw.records, raw.where):
        for value in record.values():
            if isinstance(value, str):
                check_not_double_decoded(value, where)
    return raw


def _decoded_lines(path: Path) -> list[str]:
    """The file's lines as text; the first line that is not UTF-8 is an error naming it."""
    out = []
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        try:
            out.append(line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as err:
            bad = line[max(0, err.start - 12) : err.end + 12]
            guess = bad.decode("cp1252", errors="replace").strip()
            raise DataError(
                f"{path}:{number}: not UTF-8 text (byte 0x{line[err.start]:02x} at column {err.start + 1}); "
                "the file mixes encodings",
                hint=f"re-save the file as UTF-8 (as Windows-1252 this line reads ...{guess}...)",
            ) from None
    return out


# Letters that UTF-8 bytes turn into when they are read as Windows-1252 / Latin-1 ("é" -> "Ã©").
_MOJIBAKE = re.compile("[ÂÃÄÅâ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]")


def check_not_double_decoded(text: str, where: str) -> None:
    """Text that was UTF-8 read as Windows-1252 (and saved again) is an error naming the row."""
    match = _MOJIBAKE.search(text)
    if match is None:
        return
    start = max(0, match.start() - 10)
    snippet = text[start : match.end() + 10]
    try:
        repaired = snippet.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return  # not the signature of a double decoding after all
    raise DataError(
        f"{where}: text {snippet!r} looks like UTF-8 that was read as Windows-1252 (mixed-up encodings)",
        hint=f"re-export the file as UTF-8 from its source; this part should read {repaired!r}",
    )


def _read_delimited(path: Path, lines: list[str], delimiter: str) -> RawRows:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(lines, delimiter=delimiter, quoting=quoting)
    try:
        columns = [c.strip() for c in reader.fieldnames or []]
        if not columns:
            raise DataError(f"{path}: no header line", hint="the first line must name the columns, e.g. text,label")
        reader.fieldnames = columns
        records, where = [], []
        for record in reader:
            here = f"{path}:{reader.line_num}"
            if None in record or None in record.values():
                raise DataError(
                    f"{here}: the row does not have the header's {len(columns)} fields",
                    hint="check delimiters and quoting on this line",
                )
            records.append(dict(record))
            where.append(here)
    except csv.Error as err:
        raise DataError(f"{path}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({err})", hint="check the quoting") from None
    return RawRows(path, columns, records, where)


def _read_jsonl(path: Path, lines: list[str]) -> RawRows:
    records, where, columns = [], [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg})", hint="one JSON object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}", hint="one object per line")
        columns.update(dict.fromkeys(record))
        records.append(record)
        where.append(f"{path}:{number}")
    return RawRows(path, list(columns), records, where)


def _read_parquet(path: Path) -> RawRows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow's errors are long and of several types
        raise DataError(f"{path}: not a readable parquet file ({str(err).splitlines()[0]})", hint="rewrite it") from None
    rows = table.to_pylist()
    raw = RawRows(path, list(table.column_names), rows, [f"{path} row {i + 1}" for i in range(len(rows))])
    for record, where in zip(raw.records, raw.where):
        for value in record.values():
            if isinstance(value, str):
                check_not_double_decoded(value, where)
    return raw


def _read_dataset_dir(path: Path) -> RawRows:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(
            f"{path}: a folder that is not a saved `datasets` data set",
            hint="pass a data file, or a folder written by Dataset.save_to_disk",
        ) from None
    split = None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1 and "train" not in loaded:
            raise DataError(f"{path}: several splits ({', '.join(loaded)})", hint="save the split to fit on alone")
        split = "train" if "train" in loaded else next(iter(loaded))
        loaded = loaded[split]
    label = loaded.features.get("label")
    names = list(label.names) if hasattr(label, "names") else None
    records = []
    for record in loaded:
        if names is not None and isinstance(record.get("label"), int) and record["label"] >= 0:
            record = {**record, "label": names[record["label"]]}  # ClassLabel ids travel with their names
        records.append(record)
    raw = RawRows(path, list(loaded.column_names), records, [f"{path} row {i + 1}" for i in range(len(records))], split)
    for record, where in zip(raw.records, raw.where):
        for value in record.values():
            if isinstance(value, str):
                check_not_double_decoded(value, where)
    return raw


def label_values(raw: RawRows, layout: Layout) -> list[tuple[str, str]]:
    """(label, where) per record of a classification layout; a missing or non-text label names its row."""
    out = []
    for record, where in zip(raw.records, raw.where):
        value = record.get("label")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: no label", hint="give every row a label, or remove the row")
        if isinstance(value, bool) or not isinstance(value, str):
            if isinstance(value, (int, float)):
                raise DataError(
                    f"{where}: label {value!r} is a number; labels must be names",
                    hint="write the label names (e.g. positive / negative) instead of their numbers",
                )
            raise DataError(f"{where}: label {value!r:.60} is not text", hint="write each label as a name")
        if value.strip().lstrip("-").isdigit():
            raise DataError(
                f"{where}: label {value.strip()!r} is a number; labels must be names",
                hint="write the label names (e.g. positive / negative) instead of their numbers",
            )
        out.append((value.strip(), where))
    return out

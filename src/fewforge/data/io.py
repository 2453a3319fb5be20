"""Reading and writing examples: JSONL, CSV, TSV, parquet, a saved `datasets` folder, and the hub.

Every problem is a one-line DataError naming the file, the line (1-based, for JSONL/CSV/TSV) or row,
and the fix. Rules:
- Rows carry the task's input fields ({text}, or {text_a} and {text_b}) and `label`; `columns` maps a
  task field to another column name, e.g. {"text": "sentence"}. Other columns are ignored.
- Labels must be label *names* (strings). An integer label is an error that lists the names: the integer
  order of a data set is not the task's label order (IMDb's USB copy has 0 = positive), so guessing
  would silently flip labels. The exception is a `datasets` ClassLabel column, whose names travel with
  the data and are mapped exactly (see `_hf_examples`).
- Ids are "<task>-<split>-<row index>" (0-based, blank lines skipped), so they are stable for a given
  file; `split` defaults to the file's stem ("train", "dev"). A row that has its own `id` (files written
  by `write_jsonl`) keeps it, and its `lineage` comes back as a dict.
- TSV follows GLUE: tab-separated with no quoting (texts contain quote characters); CSV uses standard
  quoting, so texts may contain commas and newlines.
Heavy libraries (pyarrow, datasets) are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.files import atomic_write, write_lines
from fewforge.tasks.base import Task
from fewforge.tasks.kinds.base import lookup

log = logging.getLogger(__name__)

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _RowChecker:
    """Turns raw records into validated Examples; `where` is "file:line" or "file row N".

    A field is read from its column in `columns` (the call's mapping over the task's own `columns`; a
    dotted column walks into objects: "answers.text.0"), falling back to the field's own name, which is
    how fewforge writes files. The target ("label") is parsed by the task's kind."""

    def __init__(self, path: Path | str, task: Task, split: str, columns: Mapping[str, str] | None) -> None:
        self.path, self.task, self.split = path, task, split
        columns = dict(columns or {})
        fields = {*task.input_fields, "label"}
        if set(columns) - fields:
            raise DataError(
                f"{path}: columns mapping names unknown fields {sorted(set(columns) - fields)}",
                hint=f"map the task's fields {sorted(fields)} to column names",
            )
        mapping = {**task.columns, **columns}
        self.columns = {f: mapping.get(f, f) for f in task.input_fields}
        self.columns["label"] = mapping.get("label", task.spec.target_column)
        self.seen_ids: dict[str, str] = {}

    def needed(self) -> list[str]:
        return [c.split(".")[0] for c in self.columns.values()]

    def check_header(self, names: Iterable[str]) -> None:
        names = list(names)
        missing = [
            c for f, c in self.columns.items() if c.split(".")[0] not in set(names) and f not in set(names)
        ]
        if missing:
            raise DataError(
                f"{self.path}: missing column {missing[0]!r} (columns: {', '.join(names)})",
                hint=f"a {self.task.kind} task needs columns {self.needed()}, or pass a columns mapping",
            )

    def _column(self, record: Mapping[str, Any], field: str) -> str:
        """The column a field is read from in this record: the mapped one, else the field's own name."""
        column = self.columns[field]
        if lookup(record, column) is None and field != column:
            own = field if field != "label" or "label" in record else self.task.spec.target_column
            if lookup(record, own) is not None:
                return own
        return column

    def example(self, record: Mapping[str, Any], where: str, index: int) -> Example:
        inputs: dict[str, str] = {}
        for field in self.task.input_fields:
            column = self._column(record, field)
            value = lookup(record, column)
            if value is None:
                raise DataError(
                    f"{where}: missing field {column!r}",
                    hint=f"each row of task {self.task.name!r} needs {self.needed()}",
                )
            inputs[field] = self._text(value, column, where)
        column = self._column(record, "label")
        if lookup(record, column) is None:
            raise DataError(
                f"{where}: missing field {column!r}", hint=f"each row of task {self.task.name!r} needs {self.needed()}"
            )
        if column == "label" and not self.task.is_classification and isinstance(record.get("answers"), Mapping):
            column = "answers"  # a QA file written with both
        label, answers = self.task.spec.read_target(self.task, lookup(record, column), inputs, column, where)
        ident, lineage = self._id(record, where, index), self._lineage(record, where)
        return Example(inputs=inputs, label=label, id=ident, lineage=lineage, answers=answers)

    def _text(self, value: Any, column: str, where: str) -> str:
        if not isinstance(value, str):
            raise DataError(f"{where}: field {column!r} must be text, got {_short(value)}", hint="quote the text")
        if not value.strip():
            raise DataError(f"{where}: empty {column!r}", hint="fill in the text or remove the row")
        return value

    def _id(self, record: Mapping[str, Any], where: str, index: int) -> str:
        raw = record.get("id")
        ident = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw) else ""
        ident = ident or f"{self.task.name}-{self.split}-{index}"
        if ident in self.seen_ids:
            raise DataError(f"{where}: id {ident!r} repeats {self.seen_ids[ident]}", hint="make every id unique")
        self.seen_ids[ident] = where
        return ident

    def _lineage(self, record: Mapping[str, Any], where: str) -> dict[str, Any]:
        raw = record.get("lineage")
        if raw is None or raw == "":
            return {}
        if isinstance(raw, str):  # parquet/CSV store it as a JSON string
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise DataError(f"{where}: lineage is not valid JSON", hint="write lineage as a JSON object") from None
        if not isinstance(raw, dict):
            raise DataError(f"{where}: lineage must be an object, got {type(raw).__name__}", hint="use {} or remove it")
        return raw


def _finish(path: Path | str, examples: list[Example]) -> list[Example]:
    if not examples:
        raise DataError(f"{path}: no examples in the file", hint="check that the right file was given and is not empty")
    return examples


def read_jsonl(
    path: str | Path, task: Task, *, split: str | None = None, columns: Mapping[str, str] | None = None
) -> list[Example]:
    """One JSON object per line; reads back files written by `write_jsonl` (with id and lineage)."""
    path = _existing(path)
    checker = _RowChecker(path, task, split or path.stem, columns)
    examples: list[Example] = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: not UTF-8 text (byte {err.start})", hint="save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{where}: invalid JSON ({err.msg} at column {err.colno})",
                hint='each line must be one JSON object, e.g. {"text": "...", "label": "..."}',
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}", hint="one object per line")
        examples.append(checker.example(record, where, len(examples)))
    return _finish(path, examples)


def _read_delimited(path: Path, checker: _RowChecker, delimiter: str) -> list[Example]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    examples: list[Example] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter, quoting=quoting)
            if not reader.fieldnames:
                raise DataError(
                    f"{path}: no header line", hint=f"the first line must name the columns {checker.needed()}"
                )
            checker.check_header(reader.fieldnames)
            for record in reader:
                # line_num is the record's last physical line: exact unless a quoted text spans lines
                where = f"{path}:{reader.line_num}"
                if None in record.values() or None in record:  # DictReader pads short rows, collects extras
                    count = sum(v is not None for k, v in record.items() if k is not None) + len(record.get(None, []))
                    raise DataError(
                        f"{where}: {count} fields where the header has {len(reader.fieldnames)}",
                        hint="check delimiters and quoting on this line",
                    )
                examples.append(checker.example(record, where, len(examples)))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start})", hint="save the file as UTF-8") from None
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})", hint="check the quoting") from None
    return _finish(path, examples)


def _read_parquet(path: Path, checker: _RowChecker) -> list[Example]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError with long messages
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: not a readable parquet file ({first})", hint="rewrite it") from None
    checker.check_header(table.column_names)
    return _finish(path, [checker.example(r, f"{path} row {i + 1}", i) for i, r in enumerate(table.to_pylist())])


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found", hint="check the path, or pass --data DIR / set FEWFORGE_DATA")
    return path


def read_examples(
    path: str | Path,
    task: Task,
    *,
    split: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> list[Example]:
    """Examples from a .jsonl/.csv/.tsv/.parquet file or a folder saved by `datasets.save_to_disk`.

    For a saved DatasetDict folder, `split` picks the split (needed when there are several).
    """
    path = _existing(path)
    if path.is_dir():
        return _read_hf_dir(path, task, split=split, columns=columns)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}",
            hint=f"use one of {', '.join(FORMATS)} or a folder saved with datasets' save_to_disk",
        )
    if fmt == "jsonl":
        return read_jsonl(path, task, split=split, columns=columns)
    checker = _RowChecker(path, task, split or path.stem, columns)
    if fmt == "parquet":
        return _read_parquet(path, checker)
    return _read_delimited(path, checker, "\t" if fmt == "tsv" else ",")


# --- Hugging Face datasets: a saved folder, or the hub (needs a network) -------------------------------

# Common column names of hub data sets (GLUE, SNLI, AG News, IMDb, TREC), tried in order when the task's
# own field name is absent; an explicit `columns` mapping always wins.
_HF_COLUMNS = {
    "text": ("text", "sentence", "content", "review"),
    "text_a": ("text_a", "sentence1", "premise", "question1", "question"),
    "text_b": ("text_b", "sentence2", "hypothesis", "question2", "sentence"),
    "label": ("label", "coarse_label", "labels"),
}


def _normalize(name: str) -> str:
    """ClassLabel name → task label spelling: "Sci/Tech" → "sci_tech", "World" → "world"."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _hf_examples(
    dataset: Any,
    task: Task,
    split: str,
    source: str,
    columns: Mapping[str, str] | None,
    label_map: Mapping[str, str] | None,
) -> list[Example]:
    """Examples from a `datasets.Dataset`; ClassLabel integers become their names, then task labels.

    A ClassLabel name maps to a task label through `label_map` if given, else exactly, else normalized
    (lowercase, non-alphanumerics → "_"). Rows with label -1 (no gold label, e.g. GLUE test) are dropped
    and counted in a warning.
    """
    names = list(dataset.column_names)
    mapping = dict(columns or {})
    for field in (*task.input_fields, "label"):
        if field not in mapping:
            candidates = _HF_COLUMNS.get(field, (field,)) if task.is_classification or field != "label" else (
                task.spec.target_column,
            )
            found = next((c for c in candidates if c in names and c not in mapping.values()), None)
            if found is None:
                raise DataError(
                    f"{source}: no column for {field!r} (columns: {', '.join(names)})",
                    hint=f'pass a columns mapping, e.g. {{"{field}": "<column>"}}',
                )
            mapping[field] = found
    checker = _RowChecker(source, task, split, mapping)
    checker.check_header(names)
    feature = dataset.features.get(mapping["label"]) if task.is_classification else None
    class_names: list[str] | None = list(feature.names) if hasattr(feature, "names") else None
    to_task: dict[str, str] = {}
    if class_names is not None:
        for name in class_names:
            target = (label_map or {}).get(name) or (name if name in task.labels else _normalize(name))
            if target not in task.labels:
                raise DataError(
                    f"{source}: class {name!r} of column {mapping['label']!r} is not a label of task {task.name!r}",
                    hint=f"pass label_map={{{name!r}: <one of {', '.join(task.labels)}>, ...}}",
                )
            to_task[name] = target
    examples: list[Example] = []
    dropped = 0
    for i, record in enumerate(dataset):
        value = record[mapping["label"]]
        if class_names is not None and isinstance(value, int):
            if value < 0:
                dropped += 1
                continue
            record = {**record, mapping["label"]: to_task[class_names[value]]}
        examples.append(checker.example(record, f"{source} row {i + 1}", len(examples)))
    if dropped:
        log.warning("%s: dropped %d rows without a gold label (-1)", source, dropped)
    return _finish(source, examples)


def _read_hf_dir(path: Path, task: Task, *, split: str | None, columns: Mapping[str, str] | None) -> list[Example]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(
            f"{path}: a folder that is not a saved `datasets` data set",
            hint="pass a data file, or a folder written by Dataset.save_to_disk",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise DataError(f"{path}: choose a split", hint=f"splits in this folder: {', '.join(loaded)}")
        loaded = loaded[split]
    return _hf_examples(loaded, task, split or path.name, str(path), columns, None)


def load_hub_dataset(
    name: str,
    task: Task,
    split: str,
    *,
    config: str | None = None,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    revision: str | None = None,
) -> list[Example]:
    """One split of a hub data set, e.g. ("nyu-mll/glue", sst2, "train", config="sst2"). Needs a network."""
    import datasets

    source = f"hub:{name}" + (f":{config}" if config else "") + f"[{split}]"
    try:
        dataset = datasets.load_dataset(name, config, split=split, revision=revision)
    except (ConnectionError, FileNotFoundError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{source}: could not load ({first})",
            hint="check the name, config and split, and the network; offline, pass --data DIR instead",
        ) from None
    return _hf_examples(dataset, task, split, source, columns, label_map)


# --- writing -------------------------------------------------------------------------------------------


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> Path:
    """One `Example.to_record()` per line (UTF-8, unescaped); atomic."""
    return write_lines(path, (example.to_record() for example in examples))


def write_parquet(path: str | Path, examples: Sequence[Example]) -> Path:
    """Input fields, label, id and lineage (a JSON string column); atomic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = list(examples[0].inputs) if examples else []
    for example in examples:
        if list(example.inputs) != fields:
            raise DataError(
                f"{path}: examples have different input fields ({fields} vs {list(example.inputs)})",
                hint="write one task's examples per file",
            )
    data: dict[str, list[str]] = {f: [e.inputs[f] for e in examples] for f in fields}
    data["label"] = [e.label for e in examples]
    data["id"] = [e.id for e in examples]
    data["lineage"] = [
        json.dumps(dict(e.lineage), ensure_ascii=False, default=str) if e.lineage else "" for e in examples
    ]
    table = pa.table({k: pa.array(v, type=pa.string()) for k, v in data.items()})
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

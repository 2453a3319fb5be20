"""Hugging Face `datasets` in and out: the Python API takes a `datasets.Dataset` wherever it takes
examples, and every synthetic set is also written as a saved dataset, a parquet file and a dataset card.

Columns of an exported set: the task's input fields, `label`, `id`, the lineage fields most readers
filter on as their own columns (`method`, `model`, `prompt`, `request_seed`, `round`, `parent_id`,
`finish_reason`, `raw`), and the whole lineage as a JSON string (`lineage`), so nothing is lost and
`read_examples` reads it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.files import write_json, write_lines, write_text
from fewforge.tasks.base import Task

if TYPE_CHECKING:
    import datasets

LINEAGE_COLUMNS = ("method", "model", "prompt", "request_seed", "round", "parent_id", "finish_reason", "raw")


def _columns(examples: Sequence[Example]) -> dict[str, list[Any]]:
    fields = list(examples[0].inputs) if examples else ["text"]
    for e in examples:
        if list(e.inputs) != fields:
            raise DataError(
                f"examples have different input fields ({fields} vs {list(e.inputs)})", hint="use one task's examples"
            )
    columns: dict[str, list[Any]] = {f: [e.inputs[f] for e in examples] for f in fields}
    columns["label"] = [e.label for e in examples]
    columns["id"] = [e.id for e in examples]
    if any(e.lineage for e in examples):
        for key in LINEAGE_COLUMNS:
            values = [e.lineage.get(key) for e in examples]
            if any(v is not None for v in values):
                columns[key] = [v if v is None or isinstance(v, (int, float)) else str(v) for v in values]
        columns["lineage"] = [json.dumps(dict(e.lineage), ensure_ascii=False, default=str) for e in examples]
    return columns


def to_dataset(examples: Sequence[Example]) -> "datasets.Dataset":
    """Examples as a `datasets.Dataset` (label names as strings, lineage kept)."""
    import datasets

    return datasets.Dataset.from_dict(_columns(list(examples)))


def as_examples(data: Any, task: Task, *, what: str = "examples") -> list[Example]:
    """Accept a sequence of Examples or a `datasets.Dataset` (columns named as the task's fields, or the
    common GLUE names; ClassLabel integers are mapped by name) and return Examples."""
    if data is None:
        return []
    if type(data).__module__.startswith("datasets"):
        import datasets

        if isinstance(data, datasets.DatasetDict):
            raise DataError(f"{what}: got a DatasetDict", hint="pass one split, e.g. dataset['train']")
        from fewforge.data.io import _hf_examples

        return _hf_examples(data, task, what, f"{what} (datasets.Dataset)", None, None)
    if isinstance(data, str):
        raise DataError(
            f"{what}: got a string", hint="pass a list of Examples, a datasets.Dataset, or read_examples(path)"
        )
    examples = list(data)
    bad = next((e for e in examples if not isinstance(e, Example)), None)
    if bad is not None:
        raise DataError(
            f"{what}: expected Example objects or a datasets.Dataset, got {type(bad).__name__}",
            hint="wrap rows with fewforge.Example(inputs={...}, label=...) or use datasets.Dataset.from_list",
        )
    return examples


def _save_to_disk(dataset: "datasets.Dataset", target: Path) -> None:
    """save_to_disk into a temporary folder, then rename: a killed run never leaves half a dataset."""
    # `.<name>.<random>.tmp`: what the run directory sweeps when a killed process leaves one (rundir.py)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        dataset.save_to_disk(str(tmp))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_synthetic(
    directory: Path,
    task: Task,
    examples: Sequence[Example],
    card: Mapping[str, Any],
    dropped: Iterable[Mapping[str, Any]],
) -> Path:
    """Everything a synthetic set is written as; returns the JSONL path (what `read_examples` reads)."""
    from fewforge.data.io import write_jsonl
    from fewforge.files import atomic_write
    from fewforge.hf import quiet_datasets

    directory.mkdir(parents=True, exist_ok=True)
    path = write_jsonl(directory / "data.jsonl", examples)
    dataset = to_dataset(examples)
    with quiet_datasets():
        atomic_write(directory / "data.parquet", lambda tmp: dataset.to_parquet(str(tmp)))
        _save_to_disk(dataset, directory / "hf")
    write_json(directory / "card.json", dict(card))
    write_lines(directory / "dropped.jsonl", dropped)
    write_text(directory / "README.md", dataset_card(task, card, list(dataset.column_names)))
    return path


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _curation_lines(curation: Mapping[str, Any] | None) -> list[str]:
    """The label audit's section of a dataset card (synthesis/curation), when the set was curated."""
    if not curation:
        return []
    cfg = curation.get("config", {})
    agreement = curation.get("agreement")
    lines = [
        "",
        "## Curation",
        "",
        f"Label audit by the `{cfg.get('auditor')}` auditor, action `{cfg.get('action')}`: "
        f"{curation.get('before')} rows scored, {curation.get('after')} kept, {curation.get('relabelled', 0)} relabelled"
        + (f"; the auditor agreed with the intended label of {100 * agreement:.1f} %." if agreement is not None else "."),
        "Each row's `lineage.audit` holds its score (the auditor's probability of its intended label).",
        "",
        "| label | scored | dropped | relabelled out / in | mean score |",
        "|---|---|---|---|---|",
    ]
    for label, row in (curation.get("per_label") or {}).items():
        lines.append(f"| {label} | {row.get('scored')} | {row.get('dropped')} | {row.get('relabelled_out')} / "
                     f"{row.get('relabelled_in')} | {row.get('mean', '')} |")
    return lines


def dataset_card(task: Task, card: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A Hugging Face dataset card (YAML metadata + Markdown) for one synthetic set."""
    import yaml

    method = card.get("method", "?")
    model = card.get("model", {})
    post = card.get("postprocess", {})
    meta = {
        "task_categories": ["text-classification"],
        "size_categories": [_size_category(int(card.get("count", 0)))],
        "tags": ["synthetic", "fewforge", str(method)],
        "configs": [{"config_name": "default", "data_files": "data.parquet"}],
    }
    sampling = card.get("sampling", {})
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# Synthetic {task.name} data ({method})",
        "",
        f"Made by fewforge for the task **{task.name}** ({task.kind}, labels: {', '.join(task.label_names)}; "
        f"{task.description}). Every row is generated; none is a real example.",
        "",
        "## How it was made",
        "",
        f"- method: `{method}` (version {card.get('method_version', '?')}), seed {card.get('seed', '?')}",
        f"- generator: `{card.get('generator_spec', '?')}` = {model.get('backend', '?')} `{model.get('model_id', '?')}`",
        "- sampling: " + ", ".join(f"{k}={v}" for k, v in sampling.items() if k not in ("seed", "n")),
        f"- rows: {card.get('count', '?')} kept of {card.get('generated', '?')} generated; per label: "
        + ", ".join(f"{k} {v}" for k, v in (card.get("per_label") or {}).items()),
        "",
        "## Filters and drop counts",
        "",
        "| reason | dropped | what it means |",
        "|---|---|---|",
    ]
    reasons = post.get("reasons", {})
    for reason, count in (post.get("dropped") or {}).items():
        lines.append(f"| {reason} | {count} | {reasons.get(reason, '')} |")
    if not post.get("dropped"):
        lines.append("| (none) | 0 | |")
    lines += _curation_lines(card.get("curation"))
    lines += [
        "",
        "Every dropped row, with its reason and the row or real example it duplicates, is in `dropped.jsonl`.",
        "",
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in columns),
        "",
        "`lineage` is the full per-row record (prompt, sampling parameters, request seed, raw completion) as JSON.",
        "",
        "## Files",
        "",
        "`data.jsonl` (fewforge's format), `data.parquet`, `hf/` (`datasets.load_from_disk`), `card.json`, `dropped.jsonl`.",
    ]
    citation = card.get("citation")
    if citation:
        lines += ["", "## Citation", "", "```bibtex", str(citation).strip(), "```"]
    return "\n".join(lines) + "\n"

"""Reading and writing examples in every format, and one-line errors naming file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewforge.data.io import load_hub_dataset, read_examples, read_jsonl, write_jsonl, write_parquet
from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.tasks import load_task

SST2 = load_task("sst2")
RTE = load_task("rte")


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def synthetic() -> list[Example]:
    lineage = {"method": "zerogen", "model": "smollm2", "prompt": "Write a review.\nOnly it.", "seed": 7}
    return [
        Example({"text": "Ein schöner Film, 5€ wert."}, "positive", id="syn-0", lineage=lineage),
        Example({"text": 'He said "no", twice.'}, "negative", id="syn-1", lineage={**lineage, "parent": "sst2-0"}),
    ]


def test_real_rows_get_stable_ids_from_task_split_and_index(tmp_path: Path, data_dir: Path) -> None:
    examples = read_examples(data_dir / "rte" / "dev.jsonl", RTE)
    assert examples[0].id == "rte-dev-0" and examples[-1].id == f"rte-dev-{len(examples) - 1}"
    assert examples[0].lineage == {}
    # blank lines do not shift the index, and `split` overrides the file stem
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a", "label": "positive"}\n\n{"text": "b", "label": "negative"}\n')
    assert [e.id for e in read_examples(path, SST2, split="pool")] == ["sst2-pool-0", "sst2-pool-1"]


def test_jsonl_round_trip_keeps_ids_and_lineage(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "out" / "syn.jsonl", synthetic())
    assert path == tmp_path / "out" / "syn.jsonl"
    assert read_jsonl(path, SST2) == synthetic()
    assert sorted(p.name for p in path.parent.iterdir()) == ["syn.jsonl"]  # no temporary file left behind
    assert "schöner" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    write_jsonl(path, synthetic()[:1])  # overwriting replaces the file
    assert len(read_jsonl(path, SST2)) == 1


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "syn.parquet", synthetic())
    assert read_examples(path, SST2) == synthetic()
    pairs = [Example({"text_a": "A", "text_b": "B"}, "entailment", id="p-0")]
    assert read_examples(write_parquet(tmp_path / "pairs.parquet", pairs), RTE) == pairs


def test_parquet_refuses_mixed_fields(tmp_path: Path) -> None:
    mixed = [synthetic()[0], Example({"text_a": "A", "text_b": "B"}, "entailment")]
    with pytest.raises(DataError, match="different input fields"):
        write_parquet(tmp_path / "mixed.parquet", mixed)


def test_csv_with_quoted_commas_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('label,text,extra\npositive,"Great, really great",x\nnegative,"Line one\nline two",y\n')
    examples = read_examples(path, SST2)
    assert [(e.text, e.label, e.id) for e in examples] == [
        ("Great, really great", "positive", "sst2-train-0"),
        ("Line one\nline two", "negative", "sst2-train-1"),
    ]


def test_tsv_glue_style_and_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text('index\tsentence1\tsentence2\tlabel\n0\tHe said "hi.\tHe spoke.\tentailment\n')
    examples = read_examples(path, RTE, columns={"text_a": "sentence1", "text_b": "sentence2"})
    assert examples == [Example({"text_a": 'He said "hi.', "text_b": "He spoke."}, "entailment", id="rte-dev-0")]


def test_saved_datasets_folder_maps_classlabel_names(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["World", "Sports", "Business", "Sci/Tech"]),
        }
    )
    train = datasets.Dataset.from_dict({"text": ["Stocks fell.", "New chip."], "label": [2, 3]}, features=features)
    dev = datasets.Dataset.from_dict({"text": ["Cup final."], "label": [1]}, features=features)
    datasets.DatasetDict({"train": train, "test": dev}).save_to_disk(str(tmp_path / "ag"))
    examples = read_examples(tmp_path / "ag", load_task("agnews"), split="train")
    assert [(e.text, e.label, e.id) for e in examples] == [
        ("Stocks fell.", "business", "agnews-train-0"),
        ("New chip.", "sci_tech", "agnews-train-1"),
    ]
    with pytest.raises(DataError, match=r"choose a split \(splits in this folder: train, test\)"):
        read_examples(tmp_path / "ag", load_task("agnews"))
    train.save_to_disk(str(tmp_path / "single"))
    assert len(read_examples(tmp_path / "single", load_task("agnews"))) == 2


def test_hub_loader_maps_glue_columns_and_drops_unlabeled_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    features = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
            "idx": datasets.Value("int32"),
        }
    )
    table = {"sentence1": ["A cat.", "A dog."], "sentence2": ["An animal.", "?"], "label": [0, -1], "idx": [0, 1]}
    calls = []

    def fake_load_dataset(name, config, split, revision):
        calls.append((name, config, split, revision))
        return datasets.Dataset.from_dict(table, features=features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_hub_dataset("nyu-mll/glue", RTE, "validation", config="rte")
    assert calls == [("nyu-mll/glue", "rte", "validation", None)]
    assert examples == [Example({"text_a": "A cat.", "text_b": "An animal."}, "entailment", id="rte-validation-0")]


def test_hub_errors_are_data_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        load_hub_dataset("x", SST2, "train")
    assert "hub:x[train]: could not load (Couldn't reach" in str(info.value) and "\n" not in str(info.value)


def test_hub_class_names_that_do_not_match_need_a_label_map(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.Dataset.from_dict({"text": ["Bad.", "Good."], "label": [0, 1]}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: data)
    with pytest.raises(DataError, match=r"class 'neg' of column 'label' is not a label of task 'sst2'.*label_map"):
        load_hub_dataset("imdb", SST2, "train")
    examples = load_hub_dataset("imdb", SST2, "train", label_map={"neg": "negative", "pos": "positive"})
    assert [e.label for e in examples] == ["negative", "positive"]


BAD_JSONL = [
    # (lines of the file, task, words the message must contain)
    (['{"text": "ok", "label": "positive"}', '{"text": "broken, "label": "x"}'], SST2, [":2: invalid JSON", "column"]),
    (['["a list"]'], SST2, [":1: expected a JSON object, got list"]),
    (
        ['{"text_a": "A", "label": "entailment"}'],
        RTE,
        [":1: missing field 'text_b'", "needs ['text_a', 'text_b', 'label']"],
    ),
    (['{"text": "ok"}'], SST2, [":1: missing field 'label'"]),
    (['{"text": "ok", "label": "positive"}', '{"text": "  ", "label": "positive"}'], SST2, [":2: empty 'text'"]),
    (['{"text": 42, "label": "positive"}'], SST2, [":1: field 'text' must be text, got 42"]),
    (
        ['{"text": "ok", "label": "neutral"}'],
        SST2,
        [":1: label 'neutral' is not a label of task 'sst2'", "valid labels: negative, positive"],
    ),
    (['{"text": "ok", "label": 1}'], SST2, [":1: label 1 is a number", "write one of: negative, positive"]),
    (
        ['{"text": "a", "label": "positive", "id": "x"}', '{"text": "b", "label": "positive", "id": "x"}'],
        SST2,
        [":2: id 'x' repeats", "train.jsonl:1 (make every id unique)"],
    ),
    (['{"text": "a", "label": "positive", "lineage": [1]}'], SST2, [":1: lineage must be an object"]),
    ([], SST2, ["no examples in the file"]),
    (["", "   "], SST2, ["no examples in the file"]),
]


@pytest.mark.parametrize(("lines", "task", "needles"), BAD_JSONL)
def test_bad_jsonl_is_one_line_naming_file_and_line(tmp_path: Path, lines: list[str], task, needles: list[str]) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_examples(path, task)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    for needle in needles:
        assert needle in text


BAD_CSV = [
    ("text,category\nhi,positive\n", ["missing column 'label' (columns: text, category)"]),
    ("text,label\nhi,positive\nthere\n", [":3: 1 fields where the header has 2"]),
    ("text,label\nhi,positive,extra\n", [":2: 3 fields where the header has 2"]),
    ("text,label\nhi,1\n", [":2: label '1' is a number"]),
    ("text,label\n", ["no examples in the file"]),
    ("", ["no header line"]),
]


@pytest.mark.parametrize(("content", "needles"), BAD_CSV)
def test_bad_csv_is_one_line_naming_file_and_line(tmp_path: Path, content: str, needles: list[str]) -> None:
    path = tmp_path / "train.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_examples(path, SST2)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    for needle in needles:
        assert needle in text


def test_missing_file_unknown_type_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found \(check the path"):
        read_examples(tmp_path / "nope.jsonl", SST2)
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
        read_examples(tmp_path / "data.xlsx", SST2)
    (tmp_path / "latin.jsonl").write_bytes(b'{"text": "caf\xe9", "label": "positive"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl:1: not UTF-8 text"):
        read_examples(tmp_path / "latin.jsonl", SST2)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"not a readable parquet file"):
        read_examples(tmp_path / "junk.parquet", SST2)
    with pytest.raises(DataError, match=r"columns mapping names unknown fields \['txt'\]"):
        read_examples(jsonl(tmp_path / "ok.jsonl", [{"text": "a", "label": "positive"}]), SST2, columns={"txt": "a"})


def test_datasets_in_and_out(tmp_path):
    """The API takes a datasets.Dataset where it takes examples (ClassLabel integers mapped by name)."""
    import datasets

    from fewforge.data.hf_datasets import as_examples, to_dataset
    from fewforge.data.schema import Example
    from fewforge.errors import DataError
    from fewforge.tasks import load_task

    task = load_task("sst2")
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])})
    glue = datasets.Dataset.from_dict({"sentence": ["a fine film", "a dull film"], "label": [1, 0]}, features=features)
    rows = as_examples(glue, task, what="train")
    assert [(e.text, e.label) for e in rows] == [("a fine film", "positive"), ("a dull film", "negative")]
    examples = [Example({"text": "x y z"}, "negative", id="s-1", lineage={"method": "zerogen", "raw": "Sure! x y z"})]
    back = as_examples(to_dataset(examples), task)
    assert [e.to_record() for e in back] == [e.to_record() for e in examples]
    assert as_examples(examples, task) == examples
    with pytest.raises(DataError, match="DatasetDict"):
        as_examples(datasets.DatasetDict({"train": glue}), task)
    with pytest.raises(DataError, match="expected Example objects"):
        as_examples([{"text": "a"}], task)

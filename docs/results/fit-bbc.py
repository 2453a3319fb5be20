"""The files of docs/results/fit-bbc.md: 8 BBC News articles per topic from the packaged corpus (the LM-BFF
sampler with seed 13 over the corpus's pool split) as bbc8.csv, the 425 real test articles as
bbc_test.csv, and the first 20 of them as texts.txt.

    python docs/results/fit-bbc.py OUT_DIR
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.sources import load_packaged_bbc
from fewforge.tasks import load_task


def write(path: Path, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((e.inputs["text"], e.label) for e in rows)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    task = load_task("bbc")
    pool, test = load_packaged_bbc(task)
    write(out / "bbc8.csv", sample_fewshot(pool, [], task, 8, seed=13).train)
    write(out / "bbc_test.csv", test)
    (out / "texts.txt").write_text("".join(e.inputs["text"] + "\n" for e in test[:20]), encoding="utf-8")

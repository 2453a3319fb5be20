"""Cause check behind docs/results/generator-tuning.md: label fidelity of the tuned generator's SST-2 rows
(seed 13, the grid's split, 100 per label, the same auditor) vs the tuning loss, length and learning rate.

    python docs/results/generator-tuning-cause-check.py runs/generator-tuning [DATA_DIR]

It reads the finished grid (its split, generation cache and tuned prompts, which it reuses) and tunes the
other variants into RUN/work/cause-check/. Prints one JSON line per variant. FEWFORGE_SMOKE=1 runs it
without a grid at tiny sizes (a fresh 2-shot split, 2 rows per label, two variants, one epoch) into a
temporary RUN, so the test suite catches an import or API change that breaks it (tests/test_scripts.py).
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from fewforge.data.fewshot import load_split, sample_fewshot
from fewforge.data.sources import load_task_data
from fewforge.evaluation.quality import Auditor, distinct_n
from fewforge.generators import CachedGenerator, get_generator
from fewforge.synthesis import get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.tasks import load_task

SMOKE = os.environ.get("FEWFORGE_SMOKE") == "1"
RUN = Path(tempfile.mkdtemp()) if SMOKE else Path(sys.argv[1] if len(sys.argv) > 1 else "runs/generator-tuning")
DATA = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parents[3] / "shared" / "data")
task = load_task("sst2")
pool, test = load_task_data(task, DATA)
split = sample_fewshot(pool, test, task, 2, seed=13) if SMOKE else load_split(RUN / "fewshot/sst2/k16", 13, task)
if SMOKE:
    pool, test = pool[:100], test[:20]
gen = CachedGenerator(get_generator("hf:smollm2", batch_size=16), RUN / "cache/generations.sqlite")
t0 = time.perf_counter()
auditor = Auditor(task, pool, test[:300])
print(f"auditor test {auditor.test_accuracy:.3f} ({time.perf_counter()-t0:.0f}s)", flush=True)
# The settings of the grid this check explains (before issue 29): constant rate, no clipping, no dropout,
# AdamW weight net, every prompt position tuned, the last epoch kept.
OLD = {"guard": "none", "schedule": "constant", "max_grad_norm": 0, "dropout": 0, "weight_net_optimizer": "adamw", "anchor": "none"}
variants = [
    ("zerogen", "zerogen", {}, None),
    ("fewgen 3 ep (grid)", "fewgen", {"tuning": {**OLD, "epochs": 3}}, RUN / "work/synthetic/sst2/k16/seed13/fewgen"),
    ("dawgen 3 ep (grid)", "dawgen", {"tuning": {**OLD, "epochs": 3}}, RUN / "work/synthetic/sst2/k16/seed13/dawgen"),
    ("dawgen 1 ep", "dawgen", {"tuning": {**OLD, "epochs": 1}}, RUN / "work/cause-check/d1"),
    ("lm 3 ep", "fewgen", {"tuning": {**OLD, "epochs": 3, "loss": "lm"}}, RUN / "work/cause-check/lm3"),
    ("dawgen 3 ep lr 1e-3", "dawgen", {"tuning": {**OLD, "epochs": 3, "learning_rate": 1e-3}}, RUN / "work/cause-check/d3lr"),
    ("dawgen 10 ep", "dawgen", {"tuning": {**OLD, "epochs": 10}}, RUN / "work/cause-check/d10"),
]
if SMOKE:
    variants = [variants[0], ("fewgen 1 ep", "fewgen", {"tuning": {"epochs": 1}}, RUN / "work/cause-check/f1")]
for name, method_name, options, work in variants:
    t0 = time.perf_counter()
    method = get_method(method_name, {"per_label": 2 if SMOKE else 100, **options})
    ctx = SynthesisContext(task, gen, seed=13, train=split.train, dev=split.dev, pool=pool, workdir=work)
    data = method.synthesize(ctx)
    rows = data.examples
    fid = auditor.agreement(rows)
    per = auditor.per_label(rows)
    tuned = data.card.get("tuning", {})
    print(json.dumps({"variant": name, "fidelity": round(fid, 3), "per_label": {k: round(v, 3) for k, v in per.items()},
                      "distinct_2": round(distinct_n([e.inputs["text"] for e in rows], 2), 3),
                      "tuning_reused": tuned.get("reused"), "last_loss": tuned.get("last_epoch_mean_loss"),
                      "seconds": round(time.perf_counter() - t0)}), flush=True)
gen.close()

# Which tokens does the learned weight net weight up? One epoch of `weighted` tuning on the same rows, then
# the correlation of each target token's weight with its discriminative loss (eq. 5) on 16 of the rows.
import torch  # noqa: E402

from fewforge.generators.soft_prompts import LabelPrompts  # noqa: E402
from fewforge.hf import second_order_attention  # noqa: E402
from fewforge.synthesis.fewgen import losses  # noqa: E402
from fewforge.synthesis.fewgen.tune import Tuner, TuningConfig, collate  # noqa: E402

lm = get_generator("hf:smollm2").trainable()
fewgen = get_method("fewgen")
heads = {label: fewgen._head(task, label, lm) for label in task.label_names}
rows = [fewgen._row(task, e, lm, heads) for e in split.train]
with second_order_attention(lm.model, True):
    prompts = LabelPrompts.from_natural_prompts(lm.model, [lm.encode(heads[label], True) for label in task.label_names])
    tuner = Tuner(prompts, TuningConfig(loss="weighted", epochs=1, **OLD), seed=0)
    tuner.fit(rows)
    batch = collate(rows[:8] + rows[-8:])
    with torch.no_grad():
        label_logp, _ = prompts.score_all_labels(batch.ids, batch.attention)
        disc = losses.discriminative_token_loss(label_logp, batch.labels)
        weights = losses.token_weights(tuner.weight_net(disc.unsqueeze(-1)).squeeze(-1), batch.targets)
mask = batch.targets.bool()
corr = float(torch.corrcoef(torch.stack([disc[mask], weights[mask]]))[0, 1])
print(json.dumps({"weight_vs_disc_loss_correlation": round(corr, 3), "max_over_mean_weight": round(float(weights[mask].max() / weights[mask].mean()), 2)}))

"""A tuned generator's diagnostics for the quality table (`fewforge quality`, the report's quality
section), read from the set's card (`card["tuning"]`, synthesis/fewgen): what the guard kept, and how
the last epoch's tuning behaved. Sets without tuning get none of these keys' values (columns stay hidden).

- dev_acc_untuned / dev_acc_kept: the generative-classifier accuracy of the prompts on the split's dev
  rows (each dev row scored under each label's prompt, argmax) before tuning and at the epoch kept;
- kept_epoch: the epoch the guard kept (0: the untuned prompts);
- audit_untuned / audit_kept (guard: audit only): the share of the rows sampled from the prompts (guard_rows
  per label) that the guard's few-shot auditor labels as intended, before tuning and at the epoch kept;
- effective_share: the effective token count 1/Σw² over the valid tokens (1 = uniform weights, small =
  a few tokens carry the loss), mean of the last epoch's steps; max_over_mean_weight beside it;
- hinge / hinge_share: DawGen's L_dist and its share of the step's loss, last epoch's mean;
- drift: the largest label's drift from its start at the last epoch, over the gap between the labels'
  starting prompts (1 = as far as the labels' prompts are apart).
"""

from __future__ import annotations

from typing import Any, Mapping

TUNING_COLUMNS = (
    ("kept epoch", "kept_epoch", "{:.0f}"),
    ("dev gen-acc untuned %", "dev_acc_untuned", "pct"),
    ("dev gen-acc kept %", "dev_acc_kept", "pct"),
    ("guard audit untuned %", "audit_untuned", "pct"),
    ("guard audit kept %", "audit_kept", "pct"),
    ("eff. tokens / valid", "effective_share", "{:.2f}"),
    ("max/mean w", "max_over_mean_weight", "{:.1f}"),
    ("hinge", "hinge", "{:.3f}"),
    ("hinge share", "hinge_share", "{:.2f}"),
    ("drift / gap", "drift", "{:.2f}"),
)
AUDIT_NOTE = (
    "guard audit = the share of the rows sampled from the prompts with the set's decoding (guard_rows per "
    "label, a seed of their own) that the guard's auditor (linear probe on the split's train + dev rows) "
    "labels as intended, untuned and as kept (guard: audit)"
)
TUNING_NOTE = (
    "kept epoch = the tuning epoch the guard kept (0 = the untuned prompt); dev gen-acc = the prompts' "
    "generative-classifier accuracy on the split's dev rows (each row scored under each label's prompt, "
    "argmax), untuned and as kept; eff. tokens / valid = 1/Σw² of the token weights over the valid tokens "
    "(1 = uniform); hinge share = DawGen's L_dist over the step's loss; drift / gap = the farthest label's "
    "move from its starting prompt over the distance between the labels' starting prompts (last epoch)"
)


def tuning_diagnostics(tuning: Mapping[str, Any]) -> dict[str, Any]:
    """The quality table's tuning columns from a set's `card["tuning"]` (None where it lacks them)."""
    guard = tuning.get("guard") or {}
    epochs = guard.get("epochs") or []
    last = (tuning.get("diagnostics") or [{}])[-1]
    effective, valid = last.get("effective_tokens"), last.get("valid_tokens")
    drift = epochs[-1].get("drift") if epochs else None
    kept = epochs[guard["kept_epoch"]] if epochs and guard.get("kept_epoch") is not None else {}
    return {
        "kept_epoch": guard.get("kept_epoch"),
        "dev_acc_untuned": epochs[0].get("dev_accuracy") if epochs else None,
        "dev_acc_kept": kept.get("dev_accuracy"),
        "audit_untuned": epochs[0].get("audit_fidelity") if epochs else None,
        "audit_kept": kept.get("audit_fidelity"),
        "effective_share": effective / valid if effective is not None and valid else None,
        "max_over_mean_weight": last.get("max_over_mean_weight"),
        "hinge": last.get("hinge"),
        "hinge_share": last.get("hinge_share"),
        "drift": max(drift) if drift else None,
    }

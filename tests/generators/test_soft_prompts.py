"""Label-conditional soft prompts on a tiny random causal LM (GQA, like SmolLM2): an untrained prompt is
the natural-language prompt, only the prompts train, and scores can be taken under given values."""

from __future__ import annotations

import pytest
import torch

from fewforge.errors import ConfigError
from fewforge.generators.soft_prompts import LabelPrompts


@pytest.fixture(scope="module")
def lm(tiny_causal_lm):
    return tiny_causal_lm()


PROMPTS = [[5, 6, 7], [8, 9, 10]]  # label 0 and label 1 "natural prompts", same length
ROWS = torch.tensor([[11, 12, 13, 14], [15, 16, 17, 18]])
MASK = torch.ones_like(ROWS)


@pytest.mark.parametrize("placement", ["prompt", "prefix"])
def test_an_untrained_prompt_scores_exactly_like_its_natural_prompt(lm, placement):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, placement)
    assert prompts.n_tokens == 3 and prompts.n_labels == 2
    out = prompts(ROWS, MASK, torch.tensor([0, 1]))
    full = lm(input_ids=torch.cat([torch.tensor(PROMPTS), ROWS], dim=1)).logits[:, 3:]
    assert out.logits.shape == (2, 4, 60) and out.hidden.shape == (2, 4, 32)
    torch.testing.assert_close(out.logits, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("placement", ["prompt", "prefix"])
def test_right_padding_does_not_change_a_rows_scores(lm, placement):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, placement)
    short = prompts(ROWS[:1, :2], MASK[:1, :2], torch.tensor([1])).logits
    padded = prompts(torch.tensor([[11, 12, 0, 0]]), torch.tensor([[1, 1, 0, 0]]), torch.tensor([1])).logits[:, :2]
    torch.testing.assert_close(padded, short, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("placement", ["prompt", "prefix"])
def test_only_the_prompts_train_and_the_generator_stays_frozen(lm, placement):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, placement)
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    start = prompts.values.detach().clone()
    optimizer = torch.optim.AdamW([prompts.values], lr=0.05, weight_decay=0.0)
    for _ in range(3):
        logp, _ = prompts.score_all_labels(ROWS, MASK)
        loss = -logp[0].mean()  # every row as label 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for p in lm.parameters())
    assert all(torch.equal(p, before[n]) for n, p in lm.named_parameters())
    assert not torch.equal(prompts.values[0], start[0])
    assert torch.equal(prompts.values[1], start[1])  # label 1's prompt scored rows only in the unused half


def test_labels_with_different_prompts_score_rows_differently_and_all_at_once(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    logp, hidden = prompts.score_all_labels(ROWS, MASK)
    assert logp.shape == (2, 2, 3) and hidden.shape == (2, 2, 3, 32)
    for label in (0, 1):
        one = prompts(ROWS, MASK, torch.tensor([label, label]))
        expected = torch.log_softmax(one.logits[:, :-1], -1).gather(-1, ROWS[:, 1:].unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(logp[label], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hidden[label], one.hidden[:, :-1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logp[0], logp[1])


def test_scores_under_given_values_carry_second_order_gradients(lm):
    """The bi-level step scores a batch under Q' = Q - lr * g(Q, W) and differentiates through it."""
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prompt")
    scale = torch.tensor(1.0, requires_grad=True)  # stands in for the weight net
    logp, _ = prompts.score_all_labels(ROWS, MASK)
    (grad,) = torch.autograd.grad(-(scale * logp[0]).mean(), prompts.values, create_graph=True)
    moved = prompts.values - 0.1 * grad
    after, _ = prompts.score_all_labels(ROWS, MASK, values=moved)
    (meta,) = torch.autograd.grad(-after[0].mean(), scale)
    assert meta.item() != 0.0


def test_prompts_of_different_lengths_share_n_and_bad_input_is_an_error(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, [[5, 6], [7, 8, 9, 10]], "prompt")
    assert prompts.values.shape == (2, 4, 32)
    with pytest.raises(ConfigError, match="placement"):
        LabelPrompts.from_natural_prompts(lm, PROMPTS, "suffix")
    with pytest.raises(ConfigError, match="non-empty"):
        LabelPrompts.from_natural_prompts(lm, [[5], []], "prefix")


@pytest.mark.parametrize("placement", ["prompt", "prefix"])
def test_generation_under_an_untrained_prompt_is_generation_from_the_natural_prompt(lm, placement):
    """Greedy continuations of left-padded contexts of different lengths match the natural prompt's."""
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, placement)
    contexts = [[11, 12, 13], [14]]
    ids = torch.tensor([[11, 12, 13], [0, 0, 14]])
    mask = torch.tensor([[1, 1, 1], [0, 0, 1]])
    kwargs = prompts.generation_inputs(1, ids, mask)
    start = kwargs.pop("input_length")
    with torch.no_grad():
        out = lm.generate(**kwargs, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    for row, context in enumerate(contexts):
        natural = torch.tensor([PROMPTS[1] + context])
        with torch.no_grad():
            expected = lm.generate(natural, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
        assert out[row, start:].tolist() == expected[0, natural.shape[1] :].tolist()


@pytest.mark.parametrize("placement", ["prompt", "prefix"])
def test_tuned_prompts_round_trip_through_a_file(lm, tmp_path, placement):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, placement)
    with torch.no_grad():
        prompts.values.add_(torch.randn_like(prompts.values) * 0.1)  # as if tuned
    path = prompts.save(tmp_path / "prompts.safetensors")
    again = LabelPrompts.load(lm, path)
    assert again.placement == placement
    torch.testing.assert_close(again.values, prompts.values)
    torch.testing.assert_close(
        again(ROWS, MASK, torch.tensor([0, 1])).logits, prompts(ROWS, MASK, torch.tensor([0, 1])).logits
    )


def test_prompts_for_another_model_or_a_bad_file_are_clear_errors(lm, tmp_path, tiny_causal_lm):
    path = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix").save(tmp_path / "p.safetensors")
    other = tiny_causal_lm(layers=3)
    with pytest.raises(ConfigError, match="do not fit this generator"):
        LabelPrompts.load(other, path)
    (tmp_path / "bad.safetensors").write_text("not tensors")
    with pytest.raises(ConfigError, match="cannot read soft prompts"):
        LabelPrompts.load(lm, tmp_path / "bad.safetensors")
    with pytest.raises(ConfigError, match="cannot read soft prompts"):
        LabelPrompts.load(lm, tmp_path / "missing.safetensors")

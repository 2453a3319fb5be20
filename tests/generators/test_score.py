"""Generator.score on every backend with the real packaged SmolLM2: transformers (hf:smollm2), llama.cpp
(the same GGUF weights), an OpenAI-compatible server, and through the cache."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Sequence

import pytest
import torch

from fewforge.errors import BackendError
from fewforge.generators import AdapterRequest, CachedGenerator, Generator, SamplingParams, Score, get_generator
from fewforge.generators.base import Completion, Positions, ProgressCallback
from fewforge.generators.hf import HFGenerator

FRANCE = "The capital of France is"
REVIEW = "Is this movie review positive or negative? 'A dull, lifeless film.'"
# prompts and continuations of different lengths, so batches are padded
PAIRS = [
    (FRANCE, " Paris"),
    (FRANCE, " banana"),
    ("Name a fruit.", "Apple"),
    (REVIEW, "Negative"),
    (REVIEW, "It is a negative review."),
    ("Write one word.", " Hello there, friend"),
]


@pytest.fixture(scope="module")
def smol() -> Iterator[HFGenerator]:
    """The packaged SmolLM2 through transformers, chat template on (what `hf:smollm2` builds)."""
    gen = get_generator("hf:smollm2", batch_size=4)
    gen.load()
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def smol_raw(smol: HFGenerator) -> Iterator[HFGenerator]:
    """The same model with raw prompts (chat template off)."""
    gen = get_generator("hf:smollm2", batch_size=4, chat=False)
    gen.load()
    yield gen
    gen.close()


def manual_logprob(gen: HFGenerator, context: list[int], target: list[int]) -> float:
    """The continuation's log-probability from one plain, unpadded forward pass."""
    with torch.no_grad():
        logits = gen.model(torch.tensor([context + target])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logp[len(context) - 1 + k, t]) for k, t in enumerate(target))


def test_a_likely_continuation_outscores_an_unlikely_one(smol: HFGenerator, smol_raw: HFGenerator):
    for gen in (smol, smol_raw):
        paris, banana = gen.score([FRANCE, FRANCE], [" Paris", " banana"])
        assert isinstance(paris, Score) and paris.n_tokens == banana.n_tokens == 1
        assert paris.logprob > banana.logprob + 5
    raw = smol_raw.score([FRANCE], [" Paris"])[0]
    assert -1.0 < raw.logprob < 0  # the raw completion is near certain (greedy writes " Paris")
    assert smol_raw.generate([FRANCE], SamplingParams(temperature=0, max_new_tokens=2))[0].text.startswith(" Paris")


def test_a_score_is_the_sum_of_its_tokens_log_probs_after_the_rendered_prompt(smol: HFGenerator, smol_raw: HFGenerator):
    prompts, continuations = [p for p, _ in PAIRS], [c for _, c in PAIRS]
    for gen in (smol, smol_raw):
        scores = gen.score(prompts, continuations)
        for (prompt, cont), score in zip(PAIRS, scores):
            context = gen._encode(prompt)  # the prompt exactly as `generate` encodes it
            target = gen.tokenizer(cont, add_special_tokens=False)["input_ids"]
            assert score.n_tokens == len(target)
            assert score.logprob == pytest.approx(manual_logprob(gen, context, target), abs=1e-3)
            assert score.mean == pytest.approx(score.logprob / len(target))
    assert smol._encode(FRANCE) != smol_raw._encode(FRANCE)  # the chat template is part of the prompt


def test_batched_scores_equal_one_by_one(smol: HFGenerator):
    prompts, continuations = [p for p, _ in PAIRS], [c for _, c in PAIRS]
    ticks: list[int] = []
    batched = smol.score(prompts, continuations, progress=ticks.append)
    assert sum(ticks) == len(PAIRS) and len(ticks) == 2  # one tick per batch of 4
    single = [smol.score([p], [c])[0] for p, c in PAIRS]
    for b, s in zip(batched, single):
        assert b.n_tokens == s.n_tokens and b.logprob == pytest.approx(s.logprob, abs=1e-3)


def test_edge_cases(smol: HFGenerator, smol_raw: HFGenerator):
    ticks: list[int] = []
    out = smol.score([FRANCE, FRANCE], ["", " Paris"], progress=ticks.append)
    assert out[0] == Score(0.0, 0) and out[1].n_tokens == 1 and sum(ticks) == 2
    assert smol.score([], []) == []
    with pytest.raises(ValueError):
        smol.score([FRANCE], [" Paris", " Lyon"])
    with pytest.raises(BackendError, match="prompt 0 is empty") as err:
        smol_raw.score([""], [" Paris"])  # raw, no BOS: nothing predicts the first token
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("placement", ["prefix", "prompt"])
def test_scores_under_a_soft_prompt(smol: HFGenerator, tmp_path: Path, placement: str):
    """An untrained soft prompt is its natural prompt: scoring under it is scoring after that text."""
    from fewforge.generators.soft_prompts import LabelPrompts

    naturals = ["A positive movie review:", "A negative movie review:"]
    natural_ids = [smol.tokenizer(t, add_special_tokens=False)["input_ids"] for t in naturals]
    assert len({len(ids) for ids in natural_ids}) == 1  # no left padding of the natural prompts
    path = LabelPrompts.from_natural_prompts(smol.model, natural_ids, placement).save(tmp_path / "p.safetensors")
    contexts, continuations = [" The film", " I watched it and it was", " The"], [" was great", " awful", " best"]
    for label in (0, 1):
        adapter = AdapterRequest("reviews", str(path), label=label)
        scores = smol.score(contexts, continuations, adapter=adapter)
        for context, cont, score in zip(contexts, continuations, scores):
            ids = natural_ids[label] + smol.tokenizer(context, add_special_tokens=False)["input_ids"]
            target = smol.tokenizer(cont, add_special_tokens=False)["input_ids"]
            assert score.logprob == pytest.approx(manual_logprob(smol, ids, target), abs=2e-3)
    glowing = smol.score([" The film was"], [" wonderful"], adapter=AdapterRequest("r", str(path), label=0))[0]
    scathing = smol.score([" The film was"], [" wonderful"], adapter=AdapterRequest("r", str(path), label=1))[0]
    assert glowing.logprob > scathing.logprob  # the label's prompt conditions the score
    if placement == "prompt":  # the soft tokens precede the text: an empty context is fine
        empty = smol.score([""], [" The film"], adapter=AdapterRequest("r", str(path), label=0))[0]
        target = smol.tokenizer(" The film", add_special_tokens=False)["input_ids"]
        assert empty.logprob == pytest.approx(manual_logprob(smol, natural_ids[0], target), abs=2e-3)


# -- llama.cpp -----------------------------------------------------------------------------------
@pytest.mark.parametrize("chat", [True, False])
def test_llamacpp_scores_agree_with_transformers_on_the_same_weights(smol, smol_raw, smollm2_path, chat):
    """llama.cpp runs the Q4_1 GGUF, transformers its dequantized copy: the scores agree closely and rank
    the same continuations the same way."""
    from fewforge.generators.llamacpp import LlamaCppGenerator

    llama = LlamaCppGenerator(smollm2_path, n_parallel=4, n_ctx_per_slot=256, chat=chat)
    hf = smol if chat else smol_raw
    prompts, continuations = [p for p, _ in PAIRS], [c for _, c in PAIRS]
    try:
        assert llama.supports_scoring
        ticks: list[int] = []
        got = llama.score(prompts + [FRANCE], continuations + [""], progress=ticks.append)
        assert sum(ticks) == len(PAIRS) + 1 and got[-1] == Score(0.0, 0)
        want = hf.score(prompts, continuations)
        for a, b in zip(got, want):
            assert a.n_tokens == b.n_tokens
            assert a.logprob == pytest.approx(b.logprob, abs=0.1 + 0.05 * abs(b.logprob))
        assert got[0].logprob > got[1].logprob + 5  # " Paris" over " banana"
        again = llama.score(prompts[:2], continuations[:2])
        assert [s.logprob for s in again] == pytest.approx([s.logprob for s in got[:2]], abs=1e-3)
    finally:
        llama.close()


def test_llamacpp_scores_do_not_depend_on_what_was_served_before(smollm2_path):
    """A row's score is the same from a fresh server and from one that generated and scored other rows
    first: each scoring request runs alone with no reused prompt cache (with cached prefixes and shared
    batches, one RTE row moved from 0.579 to 0.502 and flipped its label between two instances)."""
    from fewforge.generators.base import SamplingParams
    from fewforge.generators.llamacpp import LlamaCppGenerator

    prompts = [p for p, _ in PAIRS] * 2
    continuations = [c for _, c in PAIRS] + [c for _, c in reversed(PAIRS)]
    used, fresh = (LlamaCppGenerator(smollm2_path, n_parallel=4, n_ctx_per_slot=256) for _ in range(2))
    try:
        used.generate([FRANCE] * 4, SamplingParams(max_new_tokens=8, seed=3))
        used.score([FRANCE + " It is", FRANCE], [" Lyon", " Paris"])  # shares a prefix with what follows
        got = [s.logprob for s in used.score(prompts, continuations)]
        want = [s.logprob for s in fresh.score(prompts, continuations)]
        assert got == want  # exactly: the label of a near-tie must not move
    finally:
        used.close()
        fresh.close()


def test_llamacpp_cannot_force_an_end_of_sequence_token(smollm2_path):
    from fewforge.generators.llamacpp import LlamaCppGenerator

    with pytest.raises(BackendError, match="end-of-sequence") as err:
        LlamaCppGenerator(smollm2_path).score([FRANCE], [" Paris<|im_end|>"])
    assert "\n" not in str(err.value) and "hf:smollm2" in err.value.hint


# -- OpenAI-compatible servers -------------------------------------------------------------------
def _vllm_like_server(gen: HFGenerator) -> ThreadingHTTPServer:
    """A real HTTP server on loopback that answers vLLM's way: /v1/completions with echo and prompt
    log-probabilities (text offsets, the first token's logprob null), and /tokenize (messages or prompt).
    Its numbers come from one plain forward of the real SmolLM2."""
    tok, model = gen.tokenizer, gen.model
    lock = threading.Lock()

    def completion(body: dict) -> dict:
        prompt = body["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else tok(prompt)["input_ids"]
        with lock, torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        nxt = int(logp[-1].argmax())
        all_ids = ids + [nxt]
        token_logprobs = [None] + [float(logp[k - 1, t]) for k, t in enumerate(all_ids) if k > 0]
        offsets = [len(tok.decode(all_ids[:k])) for k in range(len(all_ids))]
        echoed = body.get("echo", False)
        keep = slice(0, None) if echoed else slice(len(ids), None)
        text = tok.decode(all_ids) if echoed else tok.decode([nxt])
        logprobs = {
            "tokens": [tok.decode([t]) for t in all_ids][keep],
            "token_logprobs": token_logprobs[keep],
            "top_logprobs": [None if lp is None else {tok.decode([t]): lp} for t, lp in zip(all_ids, token_logprobs)][
                keep
            ],
            "text_offset": offsets[keep] if echoed else [0],
        }
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "length"}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1},
        }

    def tokenize(body: dict) -> dict:
        if "messages" in body:
            text = tok.apply_chat_template(
                body["messages"], add_generation_prompt=body.get("add_generation_prompt", True), tokenize=False
            )
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(body["prompt"], add_special_tokens=body.get("add_special_tokens", True))["input_ids"]
        return {"tokens": ids, "count": len(ids), "max_model_len": 8192}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            routes = {"/v1/completions": completion, "/tokenize": tokenize}
            if self.path not in routes:
                self.send_error(404)
                return
            data = json.dumps(routes[self.path](body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def vllm_like(smol: HFGenerator) -> Iterator[str]:
    server = _vllm_like_server(smol)
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_openai_scores_from_echoed_prompt_logprobs(vllm_like: str, smol: HFGenerator, smol_raw: HFGenerator):
    from fewforge.generators.openai_compat import OpenAICompatGenerator

    prompts, continuations = [p for p, _ in PAIRS], [c for _, c in PAIRS]
    for chat, hf in ((False, smol_raw), (True, smol)):
        gen = OpenAICompatGenerator("smollm2", base_url=vllm_like, chat=chat, concurrency=2)
        assert gen.supports_scoring
        ticks: list[int] = []
        got = gen.score(prompts + [FRANCE], continuations + [""], progress=ticks.append)
        assert sum(ticks) == len(PAIRS) + 1 and got[-1] == Score(0.0, 0)
        for a, b in zip(got, hf.score(prompts, continuations)):
            assert a.n_tokens == b.n_tokens and a.logprob == pytest.approx(b.logprob, abs=1e-3)
    # raw text: the tokens from the one that covers the continuation's first character on
    straddle = OpenAICompatGenerator("smollm2", base_url=vllm_like, chat=False).score(
        ["The capital of France is "], ["Paris"]
    )
    assert straddle[0].n_tokens == 1  # "is " + "Paris" tokenize as "is", " Paris": " Paris" is the continuation's


def test_openai_server_without_prompt_logprobs_is_a_one_line_error(llama_server: str):
    """llama.cpp's server ignores echo=True: no prompt log-probabilities, so no scores."""
    from fewforge.generators.openai_compat import OpenAICompatGenerator

    for chat in (False, True):
        gen = OpenAICompatGenerator("smollm2", base_url=llama_server, chat=chat, max_attempts=1)
        with pytest.raises(BackendError) as err:
            gen.score([FRANCE], [" Paris"])
        assert llama_server in err.value.message and "cannot score" in err.value.message
        assert "\n" not in str(err.value) and "hf:" in err.value.hint and err.value.__cause__ is None


# -- the cache, and backends that cannot score ---------------------------------------------------
class NoScores(Generator):
    """A backend that generates (through the real SmolLM2) but keeps the base class's `score`."""

    backend = "noscores"

    def __init__(self, inner: Generator) -> None:
        self.inner = inner

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        return self.inner.generate(prompts, params, start_index=start_index, progress=progress)


def test_the_cache_delegates_scores_and_keeps_them(smol: HFGenerator, tmp_path: Path, monkeypatch):
    cached = CachedGenerator(smol, tmp_path / "c.sqlite")
    assert cached.supports_scoring
    prompts, continuations = [p for p, _ in PAIRS], [c for _, c in PAIRS]
    ticks: list[int] = []
    first = cached.score(prompts, continuations, progress=ticks.append)
    assert first == smol.score(prompts, continuations) and sum(ticks) == len(PAIRS)
    assert (cached.score_hits, cached.score_misses) == (0, len(PAIRS))
    calls: list[int] = []
    real = smol.score
    monkeypatch.setattr(smol, "score", lambda p, c, **kw: calls.append(len(p)) or real(p, c, **kw))
    again = cached.score(prompts + [FRANCE], continuations + [" Lyon"])
    assert again[:-1] == first and calls == [1]  # only the new pair reaches the backend
    assert (cached.score_hits, cached.score_misses) == (len(PAIRS), len(PAIRS) + 1)
    assert cached.hits == cached.misses == 0  # generation counts are their own
    cached.close()
    reopened = CachedGenerator(smol, tmp_path / "c.sqlite", cache_only=True)
    assert reopened.score(prompts, continuations) == first  # persisted, exact floats
    with pytest.raises(BackendError, match="1 of 1 scores are not in the cache"):
        reopened.score([FRANCE], [" Marseille"])
    monkeypatch.undo()
    # the chat template is an output option: raw prompts are other keys
    raw_cache = CachedGenerator(get_generator("hf:smollm2", chat=False), tmp_path / "c.sqlite", cache_only=True)
    with pytest.raises(BackendError, match="not in the cache"):
        raw_cache.score(prompts[:1], continuations[:1])
    reopened.close()
    raw_cache.close()


def test_backends_that_cannot_score_say_so_in_one_line(smol: HFGenerator, tmp_path: Path):
    plain = NoScores(smol)
    assert not plain.supports_scoring
    for gen in (plain, CachedGenerator(plain, tmp_path / "c.sqlite")):
        assert not gen.supports_scoring
        with pytest.raises(BackendError, match="noscores backend cannot score") as err:
            gen.score([FRANCE], [" Paris"])
        assert "\n" not in str(err.value) and "hf:smollm2" in err.value.hint
    assert not (tmp_path / "c.sqlite").exists()  # the error comes before any cache lookup


def test_seq2seq_scores_the_decoder_continuation(smol: HFGenerator, tmp_path: Path):
    """A tiny random T5 (no T5 weights exist offline): the continuation is what the decoder writes."""
    from transformers import T5Config, T5ForConditionalGeneration

    tok = smol.tokenizer
    config = T5Config(
        vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    gen = HFGenerator(tmp_path / "t5", chat=False, batch_size=2)
    prompts, continuations = ["translate: hello", "a b c d e f", "x"], [" bonjour", " g", " y z w"]
    scores = gen.score(prompts, continuations)
    for prompt, cont, score in zip(prompts, continuations, scores):
        enc = torch.tensor([gen._encode(prompt)])
        target = tok(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = gen.model(input_ids=enc, decoder_input_ids=torch.tensor([[0, *target[:-1]]])).logits[0]
        expected = sum(float(torch.log_softmax(logits[k], -1)[t]) for k, t in enumerate(target))
        assert score.n_tokens == len(target) and score.logprob == pytest.approx(expected, abs=1e-4)

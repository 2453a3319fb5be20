"""--push-to-hub without a hub: the repository id and the token are checked before any work, and a push
that cannot reach the hub is one line that keeps the saved model (what is uploaded: test_fit_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewforge.errors import BackendError, ConfigError
from fewforge.fit import fit
from fewforge.fit.hub import check_repo, push


def test_a_bad_repository_id_or_no_token_stops_the_fit_before_it_writes(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token either
    with pytest.raises(ConfigError, match="not a repository id"):
        check_repo("me/bad name!")
    with pytest.raises(ConfigError, match="no owner"):
        check_repo("my-model")
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(3)))
    with pytest.raises(ConfigError, match="needs a Hugging Face token"):
        fit({"examples": str(rows), "learner": "linear-probe", "method": "none"}, tmp_path / "model", push_to_hub="me/model")
    assert not (tmp_path / "model").exists()


def test_a_push_that_cannot_reach_the_hub_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("# a model\n")
    with pytest.raises(BackendError) as err:
        push(tmp_path / "model", "me/model")
    assert "\n" not in err.value.message and "rerun with the same --push-to-hub" in err.value.hint

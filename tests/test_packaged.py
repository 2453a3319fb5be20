"""The dequantized-model cache is published atomically: runs started together (one grid per task) must
never load a folder another run is still writing or replacing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fewforge import packaged


class _Export:
    """Stands in for the slow GGUF dequantization (the thing under test is how its folder is published):
    writes a complete-looking folder, and can let a 'second process' publish the same model meanwhile."""

    race = False

    def __init__(self, gguf: Path, **_: object) -> None:
        self.gguf = gguf

    def export(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"from": str(out)}))
        (out / "model.safetensors").write_text("weights")
        if _Export.race:  # another run finishes first and renames its copy into place
            target = self.target
            other = target.parent / ".other"
            shutil.copytree(out, other)
            (other / "config.json").write_text(json.dumps({"from": "other"}))
            other.rename(target)
        return out


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    import fewforge.generators.hf as hf

    monkeypatch.setenv("FEWFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf, "HFGenerator", _Export)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    return tmp_path / "cache" / "models", gguf


def test_export_is_published_whole_and_reused(cache: tuple[Path, Path]) -> None:
    models, gguf = cache
    _Export.race = False
    first = Path(packaged.lm_source(str(gguf)))
    assert first.parent == models and (first / "model.safetensors").is_file()
    assert [p.name for p in models.iterdir()] == [first.name]  # no staging folder left behind
    stamp = (first / "config.json").read_text()
    assert Path(packaged.lm_source(str(gguf))) == first and (first / "config.json").read_text() == stamp


def test_a_run_that_loses_the_race_keeps_the_winners_folder(cache: tuple[Path, Path]) -> None:
    models, gguf = cache
    from fewforge.generators._gguf import file_id

    name, digest = file_id(gguf).split("@")
    _Export.target = models / f"{Path(name).stem}-{digest}"
    _Export.race = True
    try:
        got = Path(packaged.lm_source(str(gguf)))
    finally:
        _Export.race = False
    assert got == _Export.target
    assert json.loads((got / "config.json").read_text()) == {"from": "other"}  # never replaced under a reader
    assert [p.name for p in models.iterdir()] == [got.name]

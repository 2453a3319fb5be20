"""`--push-to-hub REPO`: the fit's output folder as a Hugging Face model repository (model files, model
card, task.yaml, estimate.json and the synthetic set with its card), without the run directory.

`upload_plan` lists exactly what `push` uploads: both filter the folder with the same patterns through
huggingface_hub's own `filter_repo_objects` (what `upload_folder` applies), so the plan is testable
offline. The repository id and the token are checked before a fit starts, so a typo costs nothing.
"""

from __future__ import annotations

from pathlib import Path

from fewforge.errors import BackendError, ConfigError

# the run directory (stages, generation cache, logs) and the model stage's bookkeeping stay local
IGNORE = ["run/**", "done.json", "**/done.json", ".*", "**/.*"]


def upload_plan(folder: Path) -> list[tuple[str, int]]:
    """(path in the repository, bytes) of every file `push` uploads, sorted."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return [(f, (folder / f).stat().st_size) for f in filter_repo_objects(files, ignore_patterns=IGNORE)]


def check_repo(repo_id: str) -> None:
    """A valid repository id and a token, before any work (one-line errors)."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"--push-to-hub {repo_id!r} is not a repository id ({str(exc).splitlines()[0]})",
                          hint="write it as user/name or org/name") from None
    if "/" not in repo_id:
        raise ConfigError(f"--push-to-hub {repo_id!r} has no owner", hint="write it as user/name or org/name")
    if get_token() is None:
        raise ConfigError("--push-to-hub needs a Hugging Face token", hint="run `hf auth login` or set HF_TOKEN")


def push(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Create (or reuse) the model repository and upload the folder; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=IGNORE,
                                 commit_message="fewforge fit")
    except Exception as exc:  # network, auth and offline errors of huggingface_hub/httpx: one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendError(f"could not push {folder} to {repo_id}: {first}",
                           hint=f"the model is saved in {folder}; rerun with the same --push-to-hub to retry") from None
    return str(getattr(info, "commit_url", info))

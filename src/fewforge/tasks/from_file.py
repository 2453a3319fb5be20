"""A custom task from a YAML (.yaml/.yml) or TOML (.toml) file; no code needed.

    name: reviews
    type: single                 # single | pair
    description: product review
    labels:                      # label name -> verbalizer word, in order
      negative: terrible
      positive: great
    templates:                   # optional
      cloze: "{text} It was {mask}."
      generation:                # one string for every label, or one per label
        negative: "Write a negative product review. Reply with the review only."
        positive: "Write a positive product review. Reply with the review only."
    metrics: [accuracy, macro_f1]   # optional

Every problem is a one-line TaskError naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from fewforge.errors import TaskError
from fewforge.tasks.base import Task

TASK_FILE_SUFFIXES = (".yaml", ".yml", ".toml")


Word = Annotated[StrictStr, Field(min_length=1)]


class TemplatesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cloze: StrictStr | None = Field(None, description="cloze template with {mask} and the input fields")
    generation: Union[StrictStr, dict[StrictStr, StrictStr], None] = Field(
        None, description="generation prompt for every label, or a mapping label -> prompt"
    )


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, description="task name; data is read from <data dir>/<name>/")
    type: Literal["single", "pair"] = Field(description="single: {text}; pair: {text_a} and {text_b}")
    labels: dict[Word, Word] = Field(description="label name -> verbalizer word")
    description: StrictStr = Field(min_length=1, description='a short phrase such as "movie review"')
    templates: TemplatesSpec = Field(default_factory=TemplatesSpec)
    metrics: list[StrictStr] | None = Field(None, min_length=1, description="metric names")

    def to_task(self) -> Task:
        generation = self.templates.generation
        if isinstance(generation, str):
            generation = {label: generation for label in self.labels}
        extra: dict[str, Any] = {"metrics": tuple(self.metrics)} if self.metrics else {}
        return Task(
            name=self.name,
            kind=self.type,
            labels=dict(self.labels),
            description=self.description,
            cloze_template=self.templates.cloze or "",
            generation_templates=generation or {},
            **extra,
        )


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _explain(err: ValidationError) -> tuple[str, str]:
    """The first validation problem as (message, hint): pydantic's own text spans several lines."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    inside_templates = first["loc"][:1] == ("templates",)
    valid = _keys(TemplatesSpec) if inside_templates else _keys(TaskSpec)
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown key {loc!r}", f"valid keys{' under templates' if inside_templates else ''}: {valid}"
    if kind == "missing":
        return f"missing key {loc!r}", "needed: name, type, labels, description (optional: templates, metrics)"
    value = first.get("input")
    got = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) else ""
    message = f"{loc}: {first['msg']}{got}"
    if loc.startswith("labels"):
        return message, (
            "write labels as a mapping of label name to verbalizer word, e.g. positive: great "
            "(YAML reads yes/no/on/off as booleans: quote them)"
        )
    if loc.startswith("templates.generation"):
        return message, "give generation one string, or a mapping of label name to string"
    if loc == "type":
        return message, "use type: single or type: pair"
    return message, f"valid keys: {valid}"


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:  # its message already says "(at line N, column M)"
            raise TaskError(f"{path}: invalid TOML: {err}", hint="check the TOML syntax at that line") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise TaskError(
            f"{path}: invalid YAML{where}: {problem}",
            hint="check indentation and quote strings that contain ':' or '{'",
        ) from None


def load_task_file(path: str | Path) -> Task:
    """Read, validate and build a Task from a YAML or TOML file."""
    path = Path(path)
    if path.suffix.lower() not in TASK_FILE_SUFFIXES:
        raise TaskError(f"{path}: not a task file", hint=f"use a {' or '.join(TASK_FILE_SUFFIXES)} file")
    if not path.is_file():
        raise TaskError(
            f"{path}: task file not found", hint="check the path (relative paths start at the current directory)"
        )
    data = _parse(path)
    if data is None or data == {}:
        raise TaskError(f"{path}: the task file is empty", hint=f"write top-level keys: {_keys(TaskSpec)}")
    if not isinstance(data, dict):
        raise TaskError(
            f"{path}: the file must hold a mapping of keys, got {type(data).__name__}",
            hint=f"write top-level keys: {_keys(TaskSpec)}",
        )
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as err:
        message, hint = _explain(err)
        raise TaskError(f"{path}: {message}", hint=hint) from None
    try:
        return spec.to_task()
    except TaskError as err:  # Task's own checks (labels, template placeholders), now naming the file
        raise TaskError(f"{path}: {err.message}", hint=err.hint) from None

"""A custom task from a YAML (.yaml/.yml) or TOML (.toml) file; no code needed.

    name: reviews
    type: single                 # single | pair | extractive-qa | text-to-text
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
    published_prompts: s3-imdb   # optional: S3 takes Table 1's movie-review prompts verbatim (or s3-rte)

A text-to-text task names its inputs, where its target is in the files, and what it is called:

    name: headline
    type: text-to-text
    description: news headline
    inputs: [article]
    target: headline             # "Headline:" in generation prompts
    columns: {label: title}      # the target column (dotted paths reach inside objects: answers.text.0)
    templates:
      source: "Article: {article}\nHeadline:"     # what the student reads
      generation: "Write a short news article and its headline.\nArticle:"

An extractive-qa task needs only name, type and description (rows in the SQuAD layout).

Every problem is a one-line TaskError naming the file and the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from fewforge.errors import TaskError
from fewforge.tasks.base import PUBLISHED_PROMPTS, Task
from fewforge.tasks.kinds import KINDS, kind_names

KindName = Literal[kind_names()]  # type: ignore[valid-type]  # every registered kind, by name
# "single: Single-sentence classification: {text} → one of the task's labels; pair: ..." (each kind
# module's first line)
KIND_HELP = "; ".join(
    f"{name}: {(sys.modules[type(kind).__module__].__doc__ or '').strip().splitlines()[0].split('. ')[0].rstrip('.')}"
    for name, kind in KINDS.items()
)

TASK_FILE_SUFFIXES = (".yaml", ".yml", ".toml")


Word = Annotated[StrictStr, Field(min_length=1)]


class TemplatesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cloze: StrictStr | None = Field(None, description="cloze template with {mask} and the input fields")
    generation: Union[StrictStr, dict[StrictStr, StrictStr], None] = Field(
        None, description="generation prompt for every label, or a mapping label -> prompt"
    )
    source: StrictStr | None = Field(None, description="text-to-text: the input text a student reads")


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, description="task name; data is read from <data dir>/<name>/")
    type: KindName = Field(description=KIND_HELP)
    labels: dict[Word, Word] = Field(default_factory=dict, description="label name -> verbalizer word")
    inputs: list[Word] | None = Field(None, min_length=1, description="text-to-text: the input field names")
    given: list[Word] | None = Field(None, description="input fields generation copies from a pool row")
    target: StrictStr | None = Field(None, min_length=1, description='what the target is called ("question")')
    columns: dict[Word, Word] = Field(default_factory=dict, description="field -> column in the data files")
    description: StrictStr = Field(min_length=1, description='a short phrase such as "movie review"')
    templates: TemplatesSpec = Field(default_factory=TemplatesSpec)
    metrics: list[StrictStr] | None = Field(None, min_length=1, description="metric names")
    published_prompts: Literal[PUBLISHED_PROMPTS] | None = Field(  # type: ignore[valid-type]
        None, description="a published prompt table methods take verbatim (s3-imdb: movie reviews; s3-rte)"
    )

    def to_task(self) -> Task:
        generation = self.templates.generation
        if isinstance(generation, str):
            generation = {label: generation for label in self.labels} if self.labels else {"": generation}
        extra: dict[str, Any] = {"metrics": tuple(self.metrics)} if self.metrics else {}
        if self.inputs:
            extra["inputs"] = tuple(self.inputs)
        if self.given is not None:
            extra["given"] = tuple(self.given)
        if self.target:
            extra["target"] = self.target
        if self.templates.source:
            extra["source_template"] = self.templates.source
        if self.published_prompts:
            extra["published_prompts"] = self.published_prompts
        return Task(
            name=self.name,
            kind=self.type,
            labels=dict(self.labels),
            description=self.description,
            cloze_template=self.templates.cloze or "",
            generation_templates=generation or {},
            columns=dict(self.columns),
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
        return f"missing key {loc!r}", "needed: name, type, description, labels for classification (optional: templates, metrics)"
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
        return message, "use type: single, pair, extractive-qa or text-to-text"
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


def task_to_spec(task: Task) -> dict[str, Any]:
    """`task` as the mapping a task file holds (what `load_task_file` reads back to an equal Task), so a
    saved model carries the definition of a task that is not built in."""
    spec: dict[str, Any] = {"name": task.name, "type": task.kind, "description": task.description}
    if task.labels:
        spec["labels"] = dict(task.labels)
    if task.inputs:
        spec["inputs"] = list(task.inputs)
    if task.given is not None:
        spec["given"] = list(task.given)
    if task.target != "answer":
        spec["target"] = task.target
    if task.columns:
        spec["columns"] = dict(task.columns)
    templates: dict[str, Any] = {}
    if task.cloze_template and task.cloze_template != task.spec.default_cloze:
        templates["cloze"] = task.cloze_template
    if task.generation_templates:
        templates["generation"] = dict(task.generation_templates) if task.labels else task.generation_templates[""]
    if task.source_template:
        templates["source"] = task.source_template
    if templates:
        spec["templates"] = templates
    if task.metrics != task.spec.metrics:
        spec["metrics"] = list(task.metrics)
    if task.published_prompts:
        spec["published_prompts"] = task.published_prompts
    return spec


def write_task_file(task: Task, path: str | Path) -> Path:
    """The task as a YAML task file (atomic)."""
    from fewforge.files import write_yaml

    return write_yaml(path, task_to_spec(task))

"""Check a tag registry against the code that uses it and the scheduler that runs the jobs.

Adding a job takes a tag that follows the naming rules, an exact and unique
job id, and the job logging through its tag. :func:`check` checks all of it:

* the registry: every tag follows the rules and is unique (for a
  :class:`~otel_jobtags.TagRegistry` that holds by construction; a plain
  ``{job_id: "[TAG]"}`` mapping such as ``JOB_TAG_MAP = {...}`` is checked
  entry by entry, every problem reported);
* the source: ``[TAG]`` uses in ``.py`` files -- ``format_background_log(TAG, ...)``,
  ``"[NAME] ..."`` literals, ``Registry.NAME`` attributes, ``job_context("job_id")``,
  scheduler ``id="job_id"`` arguments -- that are not registered, and registered
  tags that nothing uses; files carrying the ``@FEAT:background-log-tagging``
  marker, and files using tags without it;
* optionally the scheduler: job ids it has that the registry lacks, and the
  other way round.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TagError
from .tags import JobTag, TagRegistry

__all__ = [
    "FEATURE_MARKER",
    "CheckReport",
    "Finding",
    "TagUse",
    "check",
    "registry_from_object",
    "schedule_findings",
]

FEATURE_MARKER = "@FEAT:background-log-tagging"
"""The comment that marks every source file belonging to the job-tagging feature."""

_TAG_TEXT_RE = re.compile(r"^\[([A-Z][A-Z0-9_]*)\](?: |$)")
_TAG_ONLY_RE = re.compile(r"^\[([A-Z][A-Z0-9_]*)\]$")
_TAG_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "env", "node_modules", "__pycache__", "build", "dist", ".tox", ".nox"}
)
_SCHEDULER_METHODS = frozenset({"add_job", "scheduled_job", "modify_job", "reschedule_job"})


@dataclass(frozen=True)
class Finding:
    """One problem (``error``) or doubt (``warning``) the check found."""

    severity: str
    """``"error"`` or ``"warning"``."""
    message: str
    """What is wrong and, where it helps, what to do."""
    path: str | None = None
    """The source file, when the finding is about one."""
    line: int | None = None
    """The line in ``path``."""

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return f"{where}{self.severity}: {self.message}"


@dataclass(frozen=True)
class TagUse:
    """A place in the source that refers to a job, by tag or by job id."""

    path: str
    line: int
    kind: str
    """How: ``format_background_log``, ``literal``, ``attribute``, ``name``,
    ``job_context``, ``scheduler id``."""
    tag: str | None
    """The tag name referred to, when it is known."""
    value: str
    """The text as written (``"[AUTO_REBAL]"``, ``"auto_rebalance"``, ``AUTO_REBAL``)."""


@dataclass
class CheckReport:
    """Everything :func:`check` found."""

    registry: TagRegistry
    findings: list[Finding] = field(default_factory=list)
    uses: list[TagUse] = field(default_factory=list)
    marker_files: list[str] = field(default_factory=list)
    files_scanned: int = 0
    scheduled_ids: list[str] | None = None

    @property
    def errors(self) -> list[Finding]:
        """The findings that are problems."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings that are doubts."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors


def registry_from_object(obj: object, name: str = "registry") -> tuple[TagRegistry, list[Finding]]:
    """A :class:`~otel_jobtags.TagRegistry` from what a ``--registry`` spec points to.

    Accepts a registry, or a mapping of job id to tag (a :class:`JobTag`, a
    ``"[NAME]"`` string or a bare ``"NAME"``) like a hand-written ``JOB_TAG_MAP``.
    Every entry of a mapping is checked against the naming rules and for
    duplicates; the entries that pass make the returned registry.

    Returns:
        The registry and the problems found (empty for a registry object).
    """
    if isinstance(obj, TagRegistry):
        return obj, []
    if not isinstance(obj, Mapping):
        return TagRegistry(), [
            Finding(
                "error",
                f"{name} is of type {type(obj).__name__}: point it at a TagRegistry or at a mapping of "
                "job id to tag such as {'auto_rebalance': '[AUTO_REBAL]'}",
            )
        ]
    registry = TagRegistry()
    findings: list[Finding] = []
    for job_id, value in obj.items():
        try:
            if isinstance(value, JobTag):
                registry.define(value.name, job_id, value.description, value.schedule)
            else:
                text = str(value)
                match = _TAG_ONLY_RE.match(text)
                registry.define(match.group(1) if match else text, job_id)
        except TagError as exc:
            findings.append(Finding("error", f"{name}[{job_id!r}]: {exc}"))
    return registry, findings


def _python_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[Path]:
    for root in paths:
        base = Path(root)
        if base.is_file():
            yield base
            continue
        for folder, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(files):
                if name.endswith(".py"):
                    yield Path(folder) / name


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _holders(tree: ast.Module) -> tuple[set[str], set[int]]:
    """Names that hold tags (``X = TagRegistry()``, tag-constant classes) and the definition nodes."""
    holders: set[str] = set()
    definitions: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            if _call_name(node.value) == "TagRegistry":
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                holders.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ClassDef):
            constants = [
                stmt.value
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
                and _TAG_ONLY_RE.match(stmt.value.value)
            ]
            if constants:  # `class BackgroundJobTag: AUTO_REBAL = "[AUTO_REBAL]"`
                holders.add(node.name)
                definitions.update(id(c) for c in constants)
    return holders, definitions


class _Uses(ast.NodeVisitor):
    def __init__(self, path: str, holders: set[str], definitions: set[int], registry: TagRegistry) -> None:
        self.path = path
        self.holders = holders
        self.skip = set(definitions)
        self.registry = registry
        self.uses: list[TagUse] = []

    def _add(self, node: ast.AST, kind: str, tag: str | None, value: str) -> None:
        self.uses.append(TagUse(self.path, getattr(node, "lineno", 0), kind, tag, value))

    def _skip_tree(self, node: ast.AST) -> None:
        self.skip.update(id(n) for n in ast.walk(node))

    def _tag_reference(self, node: ast.expr, kind: str) -> None:
        """A tag expression in a place where only a tag can be: record it whatever its form."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            match = _TAG_ONLY_RE.match(text)
            if match or _TAG_NAME_RE.match(text):
                self._add(node, kind, match.group(1) if match else text, text)
                self._skip_tree(node)
        elif isinstance(node, (ast.Attribute, ast.Name)):
            name = _base_name(node)
            if name is not None and _TAG_NAME_RE.match(name):
                if isinstance(node, ast.Name) and name not in self.registry.names:
                    return  # a constant holding some tag: cannot tell which
                self._add(node, kind, name, ast.unparse(node))
                self._skip_tree(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string: prose, not a use
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        # A dict display mapping job ids to tags (a JOB_TAG_MAP) defines, it does not use.
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._skip_tree(value)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for part in node.values[1:]:  # only the start of an f-string is a prefix
            self._skip_tree(part)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name == "format_background_log" and node.args:
            self._tag_reference(node.args[0], "format_background_log")
        elif name == "job_context" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found = self.registry.get(first.value)
                self._add(first, "job_context", found.name if found else None, first.value)
                self._skip_tree(first)
            else:
                self._tag_reference(first, "job_context")
        if name in _SCHEDULER_METHODS:
            for keyword in node.keywords:
                if (
                    keyword.arg == "id"
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                ):
                    job_id = keyword.value.value
                    found = self.registry.get(job_id)
                    self._add(keyword.value, "scheduler id", found.name if found else None, job_id)
                    self._skip_tree(keyword.value)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self.skip or not isinstance(node.value, str):
            return
        match = _TAG_TEXT_RE.match(node.value)
        if match:
            self._add(node, "literal", match.group(1), node.value.split(" ", 1)[0])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if id(node) not in self.skip and isinstance(node.ctx, ast.Load) and _TAG_NAME_RE.match(node.attr):
            base = _base_name(node.value)
            if base in self.holders:
                self._add(node, "attribute", node.attr, ast.unparse(node))
                self._skip_tree(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if id(node) not in self.skip and isinstance(node.ctx, ast.Load) and node.id in self.registry.names:
            self._add(node, "name", node.id, node.id)


def _describe(tag: JobTag) -> str:
    return f"[{tag.name}] (job id {tag.job_id!r})"


def check(
    registry: TagRegistry,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    scheduled_ids: Iterable[str] | None = None,
    allow_unused: bool = False,
    holders: Iterable[str] = (),
) -> CheckReport:
    """Check a registry against source code and, optionally, a scheduler's job ids.

    Args:
        registry: the tags.
        paths: ``.py`` files and folders to scan (virtualenvs, ``.git`` and
            build folders are skipped). With none, the source is not checked.
        scheduled_ids: the job ids the scheduler has (``[j.id for j in scheduler.get_jobs()]``).
        allow_unused: report registered tags that nothing uses as warnings, not
            errors (for code that picks tags at run time, e.g. by iterating the registry).
        holders: more names under which tags are reached as attributes
            (``JOBS`` in ``JOBS.AUTO_REBAL``); ``X = TagRegistry()`` assignments and
            classes of ``"[NAME]"`` constants are found by themselves.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is false when there is an error.
    """
    report = CheckReport(registry)
    files = list(dict.fromkeys(_python_files(paths)))
    trees: list[tuple[str, str, ast.Module]] = []
    all_holders = set(holders)
    all_definitions: set[int] = set()
    for path in files:
        shown = os.fspath(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            tree = ast.parse(text, filename=shown)
        except (OSError, SyntaxError, ValueError) as exc:
            report.findings.append(Finding("warning", f"not checked: {exc}", shown))
            continue
        found, definitions = _holders(tree)
        all_holders |= found
        all_definitions |= definitions
        trees.append((shown, text, tree))
    report.files_scanned = len(trees)

    for shown, text, tree in trees:
        visitor = _Uses(shown, all_holders, all_definitions, registry)
        visitor.visit(tree)
        report.uses.extend(visitor.uses)
        marked = FEATURE_MARKER in text
        if marked:
            report.marker_files.append(shown)
        used = sorted({u.tag for u in visitor.uses if u.tag is not None})
        if used and not marked:
            report.findings.append(
                Finding(
                    "warning",
                    f"uses {', '.join(f'[{t}]' for t in used)} but carries no '{FEATURE_MARKER}' "
                    "marker comment",
                    shown,
                )
            )

    for use in report.uses:
        if use.kind in ("job_context", "scheduler id") and use.tag is None:
            what = "job" if use.kind == "job_context" else "scheduler job id"
            report.findings.append(
                Finding(
                    "error", f"{what} {use.value!r} is not in the registry; register it", use.path, use.line
                )
            )
        elif use.tag is not None and registry.get(use.tag) is None:
            report.findings.append(
                Finding(
                    "error",
                    f"tag [{use.tag}] is not registered ({use.kind} {use.value}); define it in the registry",
                    use.path,
                    use.line,
                )
            )

    if trees:
        used_names = {u.tag for u in report.uses if u.tag is not None}
        for tag in registry:
            if tag.name not in used_names:
                report.findings.append(
                    Finding(
                        "warning" if allow_unused else "error",
                        f"tag {_describe(tag)} is registered but no scanned source uses it",
                    )
                )

    # Like a linter: located findings by file and line, then the registry-wide ones.
    located = sorted((f for f in report.findings if f.path is not None), key=lambda f: (f.path, f.line or 0))
    report.findings = located + [f for f in report.findings if f.path is None]

    if scheduled_ids is not None:
        scheduled = list(dict.fromkeys(scheduled_ids))
        report.scheduled_ids = scheduled
        for job_id in scheduled:
            if job_id not in registry.job_ids:
                report.findings.append(
                    Finding("error", f"the scheduler has job {job_id!r}, which has no tag in the registry")
                )
        for tag in registry:
            if tag.job_id not in scheduled:
                report.findings.append(Finding("error", f"tag {_describe(tag)} is not scheduled"))
    return report


def schedule_findings(scheduler: Any, registry: TagRegistry) -> list[Finding]:
    """Tagged jobs whose trigger does not follow the tag's schedule (tags left manual are not compared).

    Needs APScheduler: ``scheduler`` is an APScheduler 3.x scheduler.
    """
    from .schedule import Manual
    from .scheduler import schedule_mismatches

    return [
        Finding("error", f"schedule mismatch: {mismatch}")
        for mismatch in schedule_mismatches(scheduler, registry)
        if not isinstance(mismatch.expected, Manual)
    ]

"""Check LogQL expressions against Grafana's LogQL grammar.

The parsing is done by ``tools/logql-check/check.mjs``, a Node.js script built
on ``@grafana/lezer-logql`` (the grammar of Grafana's Loki query editor). This
module substitutes Grafana template variables with sample values, runs the
script once per batch of queries and turns its JSON report into
:class:`LogqlResult` objects.

Typical use in a test::

    from support.logql import assert_logql_parses, substitute_grafana_variables

    values = {"job": "AUTO_REBAL"}
    assert_logql_parses([substitute_grafana_variables(q, values) for q in queries])

Node.js must be on ``PATH``. When ``tools/logql-check/node_modules`` is missing
or does not match ``package-lock.json``, ``npm ci`` is run there first, so a
fresh checkout needs nothing but Node.js, npm and access to the npm registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "BUILTIN_VARIABLE_VALUES",
    "CHECKER_DIR",
    "LogqlCheckerError",
    "LogqlCheckerUnavailableError",
    "LogqlError",
    "LogqlResult",
    "UndefinedGrafanaVariableError",
    "assert_logql_parses",
    "check_logql",
    "ensure_checker_installed",
    "substitute_grafana_variables",
]

CHECKER_DIR: Path = Path(__file__).resolve().parents[2] / "tools" / "logql-check"
"""Directory holding ``check.mjs``, ``package.json`` and ``package-lock.json``."""

CHECK_TIMEOUT_SECONDS = 120
INSTALL_TIMEOUT_SECONDS = 600

BUILTIN_VARIABLE_VALUES: Mapping[str, str] = MappingProxyType(
    {
        "__interval": "1m",
        "__auto": "1m",
        "__range": "1m",
        "__rate_interval": "1m",
        "__interval_ms": "60000",
        "__range_ms": "60000",
        "__range_s": "60",
        "__from": "1700000000000",
        "__to": "1700003600000",
    }
)
"""Sample values for Grafana's built-in variables (durations are one minute)."""

# The variable syntaxes Grafana's template service recognises, in its order:
# $name | [[name]] / [[name:format]] | ${name} / ${name.field} / ${name:format}
_VARIABLE_PATTERN = re.compile(
    r"\$(?P<plain>\w+)"
    r"|\[\[(?P<bracket>\w+?)(?::\w+)?\]\]"
    r"|\$\{(?P<braced>\w+)(?:\.[^:^}]+)?(?::[^}]+)?\}"
)


class UndefinedGrafanaVariableError(ValueError):
    """A query uses Grafana template variables that were given no value."""

    def __init__(self, names: Sequence[str], query: str) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.query = query
        listed = ", ".join(f"${name}" for name in self.names)
        super().__init__(f"no value for Grafana variable(s) {listed} in query {query!r}")


class LogqlCheckerUnavailableError(RuntimeError):
    """Node.js or npm is missing, or the grammar could not be installed."""


class LogqlCheckerError(RuntimeError):
    """The checker script failed to run or returned output that makes no sense."""


@dataclass(frozen=True)
class LogqlError:
    """One syntax error (one error node of the parse tree).

    ``start``/``end`` are the checker's ``from``/``to``: code-point offsets
    into the query, so ``query[start:end]`` is the offending text. An empty
    span marks where the parser expected more input.
    """

    start: int
    end: int
    message: str


@dataclass(frozen=True)
class LogqlResult:
    """The outcome of parsing one query."""

    query: str
    ok: bool
    errors: tuple[LogqlError, ...]

    def explain(self) -> str:
        """Return the query and its error messages as readable text."""
        if self.ok:
            return f"ok: {self.query}"
        lines = [f"LogQL syntax error in {self.query!r}:"]
        for error in self.errors:
            first, *rest = error.message.splitlines()
            lines.append(f"  [{error.start}:{error.end}] {first}")
            lines += [f"    {line}" for line in rest]
        return "\n".join(lines)


def substitute_grafana_variables(query: str, values: Mapping[str, str], *, strict: bool = True) -> str:
    """Replace Grafana template variables in ``query`` with sample values.

    Recognises ``$var``, ``${var}``, ``${var:format}``, ``${var.field}``,
    ``[[var]]`` and ``[[var:format]]``. Each is replaced, verbatim, by
    ``values[var]`` (any format is ignored); Grafana's built-in variables
    (``$__interval``, ``$__auto``, ``$__range``, ``$__rate_interval``: ``1m``;
    see :data:`BUILTIN_VARIABLE_VALUES`) need no value but can be overridden
    through ``values``.

    With ``strict`` (the default) a variable without a value raises
    :class:`UndefinedGrafanaVariableError`, listing every such variable. With
    ``strict=False`` it is left in place, as Grafana does (for example Go
    template variables in ``line_format``).
    """
    for name, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"value for {name!r} must be str, not {type(value).__name__}")
    lookup = {**BUILTIN_VARIABLE_VALUES, **values}
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("bracket") or match.group("braced")
        if name in lookup:
            return lookup[name]
        if name not in missing:
            missing.append(name)
        return match.group(0)

    result = _VARIABLE_PATTERN.sub(replace, query)
    if missing and strict:
        raise UndefinedGrafanaVariableError(missing, query)
    return result


def _installed(checker_dir: Path) -> bool:
    """Tell whether node_modules holds exactly the versions in package-lock.json."""
    try:
        lock = json.loads((checker_dir / "package-lock.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogqlCheckerError(f"cannot read {checker_dir / 'package-lock.json'}: {exc}") from exc
    for path, entry in lock.get("packages", {}).items():
        if not path.startswith("node_modules/"):
            continue
        manifest = checker_dir / path / "package.json"
        try:
            version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError):
            return False
        if version != entry.get("version"):
            return False
    return True


@contextlib.contextmanager
def _install_lock(checker_dir: Path) -> Iterator[None]:
    """Serialise installs, e.g. between parallel pytest workers (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    digest = hashlib.sha256(str(checker_dir).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"logql-check-install-{digest}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_verified_dirs: set[Path] = set()


def ensure_checker_installed(checker_dir: Path = CHECKER_DIR) -> None:
    """Run ``npm ci`` in ``checker_dir`` unless node_modules matches the lockfile.

    Raises :class:`LogqlCheckerUnavailableError` when npm is missing or the
    install fails.
    """
    checker_dir = checker_dir.resolve()
    if checker_dir in _verified_dirs:
        return
    with _install_lock(checker_dir):
        if not _installed(checker_dir):
            npm = shutil.which("npm")
            if npm is None:
                raise LogqlCheckerUnavailableError(
                    "npm is not on PATH; it is needed once to install the LogQL "
                    f"grammar into {checker_dir / 'node_modules'} "
                    "(npm ci --no-audit --no-fund)"
                )
            try:
                completed = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=checker_dir,
                    capture_output=True,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    timeout=INSTALL_TIMEOUT_SECONDS,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LogqlCheckerUnavailableError(f"npm ci in {checker_dir} failed: {exc}") from exc
            if completed.returncode != 0 or not _installed(checker_dir):
                raise LogqlCheckerUnavailableError(
                    f"npm ci in {checker_dir} failed (exit {completed.returncode}):\n"
                    f"{completed.stderr.strip() or completed.stdout.strip()}"
                )
    _verified_dirs.add(checker_dir)


def _parse_report(stdout: str, queries: Sequence[str]) -> list[LogqlResult]:
    try:
        report = json.loads(stdout)
    except ValueError as exc:
        raise LogqlCheckerError(f"checker printed invalid JSON: {exc}: {stdout[:500]!r}") from exc
    if not isinstance(report, list):
        raise LogqlCheckerError(f"checker printed no JSON array: {stdout[:500]!r}")
    if len(report) != len(queries):
        raise LogqlCheckerError(f"checker returned {len(report)} results for {len(queries)} queries")
    results = []
    for query, item in zip(queries, report, strict=True):
        if item.get("query") != query:
            raise LogqlCheckerError(f"checker answered for {item.get('query')!r}, not {query!r}")
        errors = tuple(
            LogqlError(start=int(e["from"]), end=int(e["to"]), message=str(e["message"]))
            for e in item["errors"]
        )
        results.append(LogqlResult(query=query, ok=bool(item["ok"]), errors=errors))
    return results


def check_logql(queries: Sequence[str], *, checker_dir: Path = CHECKER_DIR) -> list[LogqlResult]:
    """Parse every query with Grafana's LogQL grammar, in one Node.js process.

    Returns one :class:`LogqlResult` per query, in order. Queries must already
    be free of Grafana template variables (see
    :func:`substitute_grafana_variables`). An empty or all-whitespace query
    fails with the message ``empty query``.

    Raises ``ValueError`` for an empty sequence (a check of nothing would pass
    vacuously), ``TypeError`` for a non-string query,
    :class:`LogqlCheckerUnavailableError` when Node.js or npm is missing, and
    :class:`LogqlCheckerError` when the checker itself fails.
    """
    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of strings, not a single string")
    queries = list(queries)
    if not queries:
        raise ValueError("no LogQL queries to check")
    for index, query in enumerate(queries):
        if not isinstance(query, str):
            raise TypeError(f"query {index} must be str, not {type(query).__name__}")
    node = shutil.which("node")
    if node is None:
        raise LogqlCheckerUnavailableError(
            f"node (Node.js) is not on PATH; the LogQL checker {checker_dir / 'check.mjs'} needs it"
        )
    ensure_checker_installed(checker_dir)
    try:
        completed = subprocess.run(
            [node, str(checker_dir / "check.mjs")],
            input=json.dumps(queries),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CHECK_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LogqlCheckerError(f"running {checker_dir / 'check.mjs'} failed: {exc}") from exc
    if completed.returncode not in (0, 1):
        raise LogqlCheckerError(f"check.mjs exited {completed.returncode}: {completed.stderr.strip()}")
    results = _parse_report(completed.stdout, queries)
    if (completed.returncode == 0) != all(result.ok for result in results):
        raise LogqlCheckerError(f"check.mjs exit status {completed.returncode} contradicts its report")
    return results


def assert_logql_parses(queries: Sequence[str]) -> list[LogqlResult]:
    """Check ``queries`` and raise ``AssertionError`` describing every failure."""
    results = check_logql(queries)
    failures = [result.explain() for result in results if not result.ok]
    if failures:
        raise AssertionError(
            f"{len(failures)} of {len(results)} LogQL queries do not parse:\n\n" + "\n\n".join(failures)
        )
    return results

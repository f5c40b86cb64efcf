"""Loading a tag registry or a scheduler named ``module:attribute``, for the command line and checks.

The registry comes from, in order: an explicit argument (``--registry``), the
``OTEL_JOBTAGS_REGISTRY`` environment variable, or ``registry`` under
``[tool.otel-jobtags]`` in the project's ``pyproject.toml`` (the first one
found from the current directory upward). There is no default: the demo's
registry is used only by ``otel-jobtags demo``, or when named.

Importing the named module makes one directory importable -- the current
directory for an argument or the environment variable, the ``pyproject.toml``'s
directory for that -- and puts it *after* the standard library on
``sys.path``, so a file there named like a standard module (``json.py``,
``stringprep.py``) never replaces it.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, JobTagsError

if TYPE_CHECKING:
    from .tags import TagRegistry

__all__ = [
    "PYPROJECT_TABLE",
    "REGISTRY_ENV",
    "SPEC_HELP",
    "RegistrySource",
    "find_registry",
    "import_object",
    "load_registry",
    "load_scheduler",
    "make_importable",
    "valid_spec",
]

REGISTRY_ENV = "OTEL_JOBTAGS_REGISTRY"
PYPROJECT_TABLE = "tool.otel-jobtags"
SPEC_HELP = "write module:attribute, e.g. 'myapp.jobs:JOBS'"


def valid_spec(text: str) -> bool:
    """Whether ``text`` has the ``module:attribute`` form."""
    module, sep, attr = text.partition(":")
    return bool(sep and module.strip() and attr.strip() and " " not in text)


@dataclass(frozen=True)
class RegistrySource:
    """Which registry to load, where that was said, and the directory that makes it importable."""

    spec: str
    origin: str
    """``--registry``, ``OTEL_JOBTAGS_REGISTRY`` or the ``pyproject.toml`` path."""
    root: Path

    @property
    def where(self) -> str:
        """How error messages name the setting, e.g. ``Invalid --registry 'a:B'``."""
        if self.origin == "--registry":
            return f"Invalid --registry {self.spec!r}"
        if self.origin == REGISTRY_ENV:
            return f"Invalid {REGISTRY_ENV}={self.spec!r}"
        return f"Invalid registry {self.spec!r} in {self.origin}"


def _pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _pyproject_registry(path: Path) -> str | None:
    try:
        toml = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python 3.10
        try:
            toml = importlib.import_module("tomli")
        except ModuleNotFoundError:
            raise ConfigError(
                f"Cannot read {path} on Python 3.10 without tomli: pip install tomli, or pass --registry"
            ) from None
    try:
        data = toml.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get("otel-jobtags", {})
    value = table.get("registry") if isinstance(table, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not valid_spec(value.strip()):
        raise ConfigError(f"Invalid registry = {value!r} under [{PYPROJECT_TABLE}] in {path}: {SPEC_HELP}")
    return value.strip()


def find_registry(explicit: str | None, *, cwd: Path | None = None) -> RegistrySource:
    """The registry to load: ``explicit``, else the environment variable, else ``pyproject.toml``.

    Raises:
        ConfigError: none of the three names a registry, or one is invalid.
    """
    here = Path.cwd() if cwd is None else cwd
    if explicit:
        return RegistrySource(explicit, "--registry", here)
    env = os.environ.get(REGISTRY_ENV, "").strip()
    if env:
        if not valid_spec(env):
            raise ConfigError(f"Invalid {REGISTRY_ENV}={env!r}: {SPEC_HELP}")
        return RegistrySource(env, REGISTRY_ENV, here)
    pyproject = _pyproject(here)
    if pyproject is not None:
        spec = _pyproject_registry(pyproject)
        if spec is not None:
            return RegistrySource(spec, str(pyproject), pyproject.parent)
    raise ConfigError(
        "No tag registry given: pass --registry module:ATTR (e.g. --registry myapp.jobs:JOBS), "
        f'set {REGISTRY_ENV}=module:ATTR, or add registry = "module:ATTR" under [{PYPROJECT_TABLE}] '
        "in your project's pyproject.toml (for the demo's jobs: --registry otel_jobtags.demo:JOBS)"
    )


class _NoSuchAttributeError(Exception):
    """The module imported, but has nothing under that name (becomes a ConfigError)."""


def _stdlib_end() -> int:
    """The index in ``sys.path`` just after the standard library's entries."""
    paths = sysconfig.get_paths()
    roots = {os.path.normpath(paths[key]) for key in ("stdlib", "platstdlib")}
    end = 0
    for index, entry in enumerate(sys.path):
        normal = os.path.normpath(entry) if entry else ""
        if normal.endswith(".zip") or any(normal == r or normal.startswith(r + os.sep) for r in roots):
            end = index + 1
    return end


def make_importable(root: Path) -> None:
    """Put ``root`` on ``sys.path`` after the standard library (once)."""
    entry = str(root)
    if entry in sys.path or (root == Path.cwd() and "" in sys.path):
        return
    sys.path.insert(_stdlib_end(), entry)


def import_object(spec: str, root: Path | None = None) -> object:
    """The object ``module:attr.sub`` names, importing the module with ``root`` importable.

    ``root`` defaults to the current directory.
    """
    make_importable(Path.cwd() if root is None else root)
    module_name, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _NoSuchAttributeError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def load_scheduler(spec: str) -> Any:
    """The scheduler ``spec`` names (an object with ``get_jobs()``, or a function returning one)."""
    obj = import_object(spec)
    if not hasattr(obj, "get_jobs") and callable(obj):
        obj = obj()
    if getattr(obj, "get_jobs", None) is None:
        raise JobTagsError(f"{spec} is a {type(obj).__name__}, not a scheduler: it has no get_jobs()")
    return obj


def load_registry(explicit: str | None) -> TagRegistry:
    """The registry ``explicit`` (the ``--registry`` value), the environment or ``pyproject.toml`` names.

    Raises:
        ConfigError: the spec is invalid, or names something that is not a registry.
        JobTagsError: importing it failed, or its tags are broken.
    """
    from collections.abc import Mapping

    from .check import registry_from_object
    from .tags import TagRegistry as TagRegistryType

    source = find_registry(explicit)
    spec, where = source.spec, source.where
    try:
        obj = import_object(spec, source.root)
    except _NoSuchAttributeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{where}: cannot import {spec.partition(':')[0]!r}: {exc}") from None
    except Exception as exc:  # importing user code can raise anything, TagError included
        raise JobTagsError(f"{where}: importing it raised {type(exc).__name__}: {exc}") from None
    registry, findings = registry_from_object(obj, spec)
    if findings:
        # A wrong kind of object is a setting to fix (exit 2); broken tags are findings (exit 1).
        error = ConfigError if not isinstance(obj, Mapping | TagRegistryType) else JobTagsError
        raise error(f"{where}: " + "; ".join(f.message for f in findings))
    return registry

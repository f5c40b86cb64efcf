"""Loading a tag registry or a scheduler named ``module:attribute``, for the command line and checks."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, JobTagsError

if TYPE_CHECKING:
    from .tags import TagRegistry

__all__ = [
    "DEFAULT_REGISTRY",
    "REGISTRY_ENV",
    "SPEC_HELP",
    "NoSuchAttributeError",
    "import_object",
    "load_registry",
    "load_scheduler",
    "registry_spec",
    "valid_spec",
]


DEFAULT_REGISTRY = "otel_jobtags.demo:JOBS"
REGISTRY_ENV = "OTEL_JOBTAGS_REGISTRY"
SPEC_HELP = "write module:attribute, e.g. 'myapp.jobs:JOBS'"


def valid_spec(text: str) -> bool:
    module, sep, attr = text.partition(":")
    return bool(sep and module.strip() and attr.strip() and " " not in text)


def registry_spec(explicit: str | None) -> tuple[str, str]:
    """The registry spec and where it came from: ``explicit``, the environment, or the default."""
    if explicit:
        return explicit, "--registry"
    env = os.environ.get(REGISTRY_ENV, "").strip()
    if env:
        if not valid_spec(env):
            raise ConfigError(f"Invalid {REGISTRY_ENV}={env!r}: {SPEC_HELP}")
        return env, REGISTRY_ENV
    return DEFAULT_REGISTRY, "default"


class NoSuchAttributeError(JobTagsError):
    """The module imported, but has nothing under that name."""


def import_object(spec: str) -> object:
    """The object ``module:attr.sub`` names, importing the module (the current folder is importable)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, so `myapp.jobs:JOBS` works from the project
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise NoSuchAttributeError(f"module {module_name!r} has no attribute {attr!r}") from None
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
    """The registry ``explicit`` (the ``--registry`` value) or the environment names.

    Raises:
        ConfigError: the spec is invalid, or names something that is not a registry.
        JobTagsError: importing it failed, or its tags are broken.
    """
    from collections.abc import Mapping

    from .check import registry_from_object
    from .tags import TagRegistry as TagRegistryType

    spec, source = registry_spec(explicit)
    where = {
        "--registry": f"Invalid --registry {spec!r}",
        REGISTRY_ENV: f"Invalid {REGISTRY_ENV}={spec!r}",
    }.get(source, f"Invalid default registry {spec!r}")
    try:
        obj = import_object(spec)
    except NoSuchAttributeError as exc:
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

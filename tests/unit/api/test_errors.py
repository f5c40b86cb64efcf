"""Every error the package raises is defined in otel_jobtags.errors, drawn in its docstring, and importable."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import otel_jobtags
from otel_jobtags import errors

PACKAGE = Path(otel_jobtags.__file__).parent
ERRORS = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]


def test_every_error_derives_from_the_package_base() -> None:
    assert sorted(error.__name__ for error in ERRORS) == [
        "ConfigError",
        "JobTagsError",
        "LokiError",
        "MarkerError",
        "MissingExtraError",
        "PayloadError",
        "SpoolError",
        "StoreError",
        "StoreQueryError",
        "TagError",
        "UnknownJobError",
        "UntaggedJobError",
        "UntrustedSpoolError",
    ]
    assert all(issubclass(error, errors.JobTagsError) for error in ERRORS)


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.__name__)
def test_the_docstring_draws_every_error_under_its_base(error: type[BaseException]) -> None:
    lines = (errors.__doc__ or "").splitlines()
    [line] = [line for line in lines if f" {error.__name__} " in line or line.endswith(error.__name__)]
    if error is not errors.JobTagsError:
        parent = next(base for base in error.__bases__ if issubclass(base, errors.JobTagsError))
        depth = line.index(error.__name__)
        above = [other for other in lines[: lines.index(line)] if 0 <= other.find(parent.__name__) < depth]
        assert above, f"{error.__name__} is not drawn under {parent.__name__}"


def test_no_other_module_defines_an_error_of_the_package() -> None:
    names = {error.__name__ for error in ERRORS}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {
                    base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                    for base in node.bases
                }
                if bases & names:
                    found.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert found == []


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("otel_jobtags", "LokiError"),
        ("otel_jobtags.loki", "LokiError"),
        ("otel_jobtags.markdown", "MarkerError"),
        ("otel_jobtags.receiver", "PayloadError"),
        ("otel_jobtags.spool", "SpoolError"),
        ("otel_jobtags.spool", "UntrustedSpoolError"),
    ],
)
def test_errors_stay_importable_where_users_import_them(module: str, name: str) -> None:
    assert getattr(__import__(module, fromlist=[name]), name) is getattr(errors, name)

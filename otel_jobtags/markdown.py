"""The tag registry as a Markdown job table, kept up to date inside documents.

:func:`render_job_table` writes the table the original application's documentation kept by hand
(``| constant | tag | job id | what it does | schedule |``), from the registry.
:func:`replace_between_markers` puts generated text between two marker
comments of a Markdown file, leaving the rest of the file alone, so a README
or a docs page can hold a table that a test keeps from going stale::

    <!-- jobs-table:start -->
    | constant | tag | job id | what it does | schedule |
    ...
    <!-- jobs-table:end -->

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ._generated import stale_files, write_files
from .errors import MarkerError
from .tags import JobTag, TagRegistry

__all__ = [
    "JOBS_TABLE_END",
    "JOBS_TABLE_START",
    "MarkerError",
    "render_job_table",
    "replace_between_markers",
    "update_job_table",
]

JOBS_TABLE_START = "<!-- jobs-table:start -->"
"""The comment line after which the job table goes."""
JOBS_TABLE_END = "<!-- jobs-table:end -->"
"""The comment line before which the job table ends."""


def _cell(text: str) -> str:
    # A cell is one line; a "|" would end it early.
    return " ".join(text.split()).replace("|", "\\|")


def render_job_table(registry: TagRegistry, *, link: Callable[[JobTag], str] | None = None) -> str:
    """The registry as a Markdown table, one row per tag in definition order.

    Args:
        registry: the tags.
        link: if given, the tag cell links to ``link(tag)``.

    Returns:
        The table, each line ending with a newline.
    """
    lines = [
        "| constant | tag | job id | what it does | schedule |",
        "|---|---|---|---|---|",
    ]
    for tag in registry:
        shown = _cell(str(tag))
        if link is not None:
            label = shown.replace("[", "\\[").replace("]", "\\]")
            shown = f"[{label}]({link(tag)})"
        cells = (tag.name, shown, _cell(tag.job_id), _cell(tag.description), _cell(str(tag.schedule)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(
    text: str,
    content: str,
    *,
    start: str = JOBS_TABLE_START,
    end: str = JOBS_TABLE_END,
    source: str = "the document",
) -> str:
    """``text`` with the lines between the ``start`` and ``end`` marker lines replaced by ``content``.

    A marker counts only on a line of its own (surrounding blanks allowed), so
    prose may mention the markers. The marker lines stay; ``content`` fills
    the lines between them; everything else is kept byte for byte.

    Raises:
        MarkerError: a marker line is missing or repeated, or ``end`` comes
            before ``start``; the message names ``source``.
    """
    spans = {}
    for marker in (start, end):
        found = list(re.finditer(rf"^[ \t]*{re.escape(marker)}[ \t]*$", text, flags=re.MULTILINE))
        if len(found) != 1:
            problem = "has no line" if not found else f"has {len(found)} lines"
            raise MarkerError(
                f"{source} {problem} {marker!r}: put {start!r} and {end!r} each on a line "
                "of their own, around the place the table goes"
            )
        spans[marker] = found[0].span()
    if spans[end][0] < spans[start][0]:
        raise MarkerError(f"{source} has {end!r} before {start!r}: put the start marker first")
    body = content if not content or content.endswith("\n") else content + "\n"
    return f"{text[: spans[start][1]]}\n{body}{text[spans[end][0] :]}"


def _updated(path: Path, registry: TagRegistry) -> dict[Path, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MarkerError(
            f"{path} does not exist: create it with the lines {JOBS_TABLE_START!r} and "
            f"{JOBS_TABLE_END!r} where the job table goes"
        ) from None
    return {path: replace_between_markers(text, render_job_table(registry), source=str(path))}


def update_job_table(path: str | Path, registry: TagRegistry, *, check: bool = False) -> bool:
    """Regenerate the job table between the markers of a Markdown file.

    Args:
        path: the Markdown file (README, docs page) holding the markers.
        registry: the tags the table lists.
        check: only tell whether the table is stale; write nothing.

    Returns:
        ``True`` when the file was (with ``check``: would be) changed.

    Raises:
        MarkerError: the file is missing or its markers are wrong.
    """
    files = _updated(Path(path), registry)
    return bool(stale_files(files) if check else write_files(files))

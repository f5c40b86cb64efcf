"""Files produced from the tag registry: write them, or tell which copies on disk are stale.

Dashboards, alert rules and the docs' job table are generated; the committed
copies must equal what the code produces today. Both operations take the full
mapping of path to expected text, so a missing file counts as stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["stale_files", "write_files"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    """The paths whose content on disk differs from the expected text, or that are missing."""
    return [path for path, text in files.items() if _read(path) != text]


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Write the files that are stale, creating directories; returns the paths written."""
    written = []
    for path in stale_files(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(files[path])
        written.append(path)
    return written

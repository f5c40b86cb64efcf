"""Errors raised by otel-jobtags.

Every error derives from :class:`JobTagsError`, so an application can catch
them all at once; the subclasses say which rule was broken and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable


class JobTagsError(Exception):
    """Base class of every error this package raises."""


class TagError(JobTagsError, ValueError):
    """A tag, job id or schedule breaks the registry's rules.

    Raised at definition time, so a bad tag never reaches a log line.
    """


class UnknownJobError(JobTagsError, LookupError):
    """A job id or tag name is not in the registry.

    Attributes:
        value: the value that was looked up.
        known: the job ids and tag names the registry does know.
    """

    def __init__(self, value: object, known: Iterable[str]) -> None:
        self.value = value
        self.known = tuple(known)
        listed = ", ".join(self.known) if self.known else "none: the registry is empty"
        super().__init__(f"Unknown job {value!r}: known jobs are {listed}")


class ConfigError(JobTagsError, ValueError):
    """A setting, from an argument or an environment variable, is invalid."""

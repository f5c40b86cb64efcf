"""Job tags and the registry that checks them.

A :class:`JobTag` is a ``BackgroundJobTag``-style constant made into a small
value type: it renders as ``[AUTO_REBAL]``, compares by name, and knows its
APScheduler job id, description and schedule. A :class:`TagRegistry` holds the
tags of one application and enforces the naming rules when a tag is defined,
so a bad tag fails at import time instead of in a log line.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import TagError, UnknownJobError
from .schedule import Manual, Schedule, parse_schedule

__all__ = ["JobTag", "TagRegistry", "format_background_log", "tag_prefix"]

MAX_TAG_LENGTH = 15
_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_BRACKETED_RE = re.compile(r"\[([A-Z][A-Z0-9_]*)\]")


def _suggest(name: str) -> str:
    """A tag name close to ``name`` that follows the rules, for error messages."""
    cleaned = re.sub(r"[^A-Z0-9_]", "_", name.strip().strip("[]").upper())
    cleaned = re.sub(r"_+", "_", cleaned).strip("_")
    cleaned = cleaned.lstrip("0123456789_")
    return (cleaned or "MY_JOB")[:MAX_TAG_LENGTH].rstrip("_")


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TagError(f"Invalid tag {name!r}: a tag name is a string such as 'AUTO_REBAL'")
    rule = (
        f"use upper-case letters, digits and '_', starting with a letter "
        f"(at most {MAX_TAG_LENGTH}), e.g. {_suggest(name)!r}"
    )
    if not name:
        raise TagError(f"Invalid tag '': the name is empty; {rule}")
    if len(name) > MAX_TAG_LENGTH:
        raise TagError(f"Invalid tag {name!r}: {len(name)} characters is too long; {rule}")
    if not _NAME_RE.fullmatch(name):
        raise TagError(f"Invalid tag {name!r}: {rule}")
    return name


def _check_job_id(name: str, job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id.strip():
        raise TagError(
            f"Invalid job id {job_id!r} for tag {name!r}: give the exact id the job is "
            "registered under in the scheduler, e.g. 'auto_rebalance'"
        )
    if job_id != job_id.strip() or any(c in job_id for c in "\r\n\t"):
        raise TagError(
            f"Invalid job id {job_id!r} for tag {name!r}: remove the surrounding spaces "
            "and control characters; it must equal the scheduler's job id exactly"
        )
    return job_id


@dataclass(frozen=True, eq=False)
class JobTag:
    """One background job's tag.

    ``str(tag)`` is the text prefix ``[NAME]``; :attr:`value` is the same text,
    as code that formats it by hand reads it. Tags compare equal by name, and also to their
    ``[NAME]`` text, so plain string constants and these tags mix.

    Build tags with :meth:`TagRegistry.define`, which checks the rules.
    """

    name: str
    """The tag name without brackets, e.g. ``AUTO_REBAL``."""
    job_id: str
    """The scheduler's job id, e.g. ``auto_rebalance``."""
    description: str = ""
    """What the job does, in a few words."""
    schedule: Schedule = field(default_factory=Manual)
    """When the job runs."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_job_id(self.name, self.job_id)
        object.__setattr__(self, "schedule", parse_schedule(self.schedule))
        object.__setattr__(self, "_text", f"[{self.name}]")
        object.__setattr__(self, "prefix", f"[{self.name}] ")

    prefix: str = field(init=False, repr=False, compare=False)
    """The text every log line of the job starts with: ``"[NAME] "``."""

    @property
    def value(self) -> str:
        """The bracketed tag, ``[NAME]`` (an enum-style ``job_tag.value``)."""
        return self._text  # type: ignore[attr-defined, no-any-return]

    def __str__(self) -> str:
        return self._text  # type: ignore[attr-defined, no-any-return]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobTag):
            return self.name == other.name
        if isinstance(other, str):
            return other == self._text  # type: ignore[attr-defined, no-any-return]
        return NotImplemented

    def __hash__(self) -> int:
        # Equal to its "[NAME]" text, so it must hash like it.
        return hash(self._text)  # type: ignore[attr-defined]


def tag_prefix(tag: JobTag | str) -> str:
    """The ``"[NAME] "`` prefix for a tag or a ``[NAME]``/``NAME`` string."""
    if isinstance(tag, JobTag):
        return tag.prefix
    text = str(tag)
    return f"{text} " if text.startswith("[") else f"[{text}] "


def format_background_log(tag: JobTag | str, message: str) -> str:
    """Prefix ``message`` with the job's tag, exactly as hand-written code does.

    >>> format_background_log(JobTag("AUTO_REBAL", "auto_rebalance"), "job started")
    '[AUTO_REBAL] job started'

    # @FEAT:background-log-tagging
    """
    return f"{tag} {message}"


class TagRegistry:
    """The tags of one application, checked as they are defined.

    >>> jobs = TagRegistry()
    >>> AUTO_REBAL = jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
    >>> jobs.AUTO_REBAL is AUTO_REBAL, jobs.by_job_id("auto_rebalance").name
    (True, 'AUTO_REBAL')

    Tags are reachable as attributes (``jobs.AUTO_REBAL``, like a
    ``BackgroundJobTag``), by job id, by name, and through
    :attr:`job_tag_map`, a ``JOB_TAG_MAP``.
    """

    def __init__(self, tags: Iterator[JobTag] | list[JobTag] | tuple[JobTag, ...] = ()) -> None:
        self._by_name: dict[str, JobTag] = {}
        self._by_job_id: dict[str, JobTag] = {}
        self._lock = threading.Lock()
        for tag in tags:
            self.add(tag)

    def define(
        self,
        name: str,
        job_id: str,
        description: str = "",
        schedule: str | Schedule = "manual",
    ) -> JobTag:
        """Create a tag, check it against the rules and the other tags, and add it.

        Args:
            name: upper-case letters, digits and ``_``, starting with a letter,
                at most 15 characters, e.g. ``"AUTO_REBAL"``.
            job_id: the exact id the job has in the scheduler.
            description: what the job does.
            schedule: when it runs, as text (``"every 30 s"``, ``"daily 09:00"``,
                ``"hourly at minute 17"``, ``"cron: 0 9 * * 1"``, ``"manual"``)
                or a :mod:`~otel_jobtags.schedule` object.

        Raises:
            TagError: a rule is broken; the message names the value and the fix.
        """
        return self.add(JobTag(name, job_id, description, parse_schedule(schedule)))

    def add(self, tag: JobTag) -> JobTag:
        """Add an existing tag, checking that its name and job id are unique."""
        with self._lock:
            if tag.name in self._by_name:
                raise TagError(
                    f"Duplicate tag {tag.name!r}: it is already defined for job id "
                    f"{self._by_name[tag.name].job_id!r}; choose another name"
                )
            if tag.job_id in self._by_job_id:
                raise TagError(
                    f"Duplicate job id {tag.job_id!r}: it already has tag "
                    f"{self._by_job_id[tag.job_id].name!r}; each job id maps to one tag"
                )
            self._by_name[tag.name] = tag
            self._by_job_id[tag.job_id] = tag
        return tag

    def by_job_id(self, job_id: str) -> JobTag:
        """The tag of a scheduler job id.

        Raises:
            UnknownJobError: no tag has that job id.
        """
        try:
            return self._by_job_id[job_id]
        except (KeyError, TypeError):
            raise UnknownJobError(job_id, self._by_job_id) from None

    def by_name(self, name: str) -> JobTag:
        """The tag with a name, given bare (``AUTO_REBAL``) or bracketed (``[AUTO_REBAL]``).

        Raises:
            UnknownJobError: no tag has that name.
        """
        if isinstance(name, str) and (m := _BRACKETED_RE.fullmatch(name)):
            name = m.group(1)
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise UnknownJobError(name, self._by_name) from None

    def get(self, value: JobTag | str) -> JobTag | None:
        """Like :meth:`resolve`, but ``None`` when nothing matches."""
        if isinstance(value, JobTag):
            return self._by_name.get(value.name)
        if not isinstance(value, str):
            return None
        tag = self._by_job_id.get(value) or self._by_name.get(value)
        if tag is None and (m := _BRACKETED_RE.fullmatch(value)):
            tag = self._by_name.get(m.group(1))
        return tag

    def resolve(self, value: JobTag | str) -> JobTag:
        """The tag for a tag, a job id, a tag name or a ``[NAME]`` text.

        Job ids are tried before names.

        Raises:
            UnknownJobError: nothing in the registry matches.
        """
        tag = self.get(value)
        if tag is None:
            raise UnknownJobError(value, self._by_job_id)
        return tag

    @property
    def job_tag_map(self) -> Mapping[str, JobTag]:
        """The ``JOB_TAG_MAP``: job id to tag, read-only, derived from the tags."""
        return MappingProxyType(self._by_job_id)

    @property
    def job_ids(self) -> tuple[str, ...]:
        """Every job id, in definition order."""
        return tuple(self._by_job_id)

    @property
    def names(self) -> tuple[str, ...]:
        """Every tag name, in definition order."""
        return tuple(self._by_name)

    def __getattr__(self, name: str) -> JobTag:
        # Only called when normal lookup fails: expose tags as attributes.
        by_name = self.__dict__.get("_by_name")
        if by_name is not None and name in by_name:
            return by_name[name]  # type: ignore[no-any-return]
        raise AttributeError(f"{type(self).__name__!s} has no tag or attribute {name!r}")

    def __iter__(self) -> Iterator[JobTag]:
        return iter(tuple(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, JobTag | str) and self.get(value) is not None

    def __repr__(self) -> str:
        return f"TagRegistry({', '.join(self._by_name)})"

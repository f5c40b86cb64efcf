"""Errors raised by otel-jobtags: every one of them is defined here.

Every error derives from :class:`JobTagsError`, so an application can catch
them all at once; the subclasses say which rule was broken and how to fix it::

    JobTagsError
    ├── TagError (ValueError)             a tag, job id or schedule breaks the rules
    ├── UnknownJobError (LookupError)     a job id or tag name is not in the registry
    │   └── UntaggedJobError              a scheduler's job id has no tag
    ├── ConfigError (ValueError)          a setting (argument, variable, file) is invalid
    ├── MissingExtraError (ImportError)   an integration's optional package is missing
    ├── LokiError                         Loki cannot be reached or answers an error
    ├── MarkerError (ValueError)          a Markdown file lacks the job table's markers
    ├── PayloadError (ValueError)         an export to the receiver is not a valid OTLP logs request
    ├── SpoolError                        a spool file fails its checks
    ├── UntrustedSpoolError (PermissionError)  the spool directory is not this user's alone
    └── StoreError                        the embedded store cannot do what was asked
        └── StoreQueryError (ValueError)  a store query has an invalid filter
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


class UntaggedJobError(UnknownJobError):
    """A scheduler holds jobs whose ids have no tag in the registry.

    Raised by the scheduler integration in strict mode, when it connects
    (for the jobs already there) and when a job is added.

    Attributes:
        job_ids: the untagged job ids; empty for a job added without an id.
        value: the first of them (``None`` for a job without an id).
        known: the job ids that do have a tag.
    """

    def __init__(self, job_ids: Iterable[str], known: Iterable[str]) -> None:
        self.job_ids = tuple(job_ids)
        self.value = self.job_ids[0] if self.job_ids else None
        self.known = tuple(known)
        listed = ", ".join(repr(job_id) for job_id in self.job_ids)
        tagged = ", ".join(self.known) if self.known else "none: the registry is empty"
        if not self.job_ids:
            message = (
                "A job added without an id gets a random one, which no tag can name: "
                "add it with id='<a tagged job id>', or connect with strict=False to run it untagged"
            )
        elif len(self.job_ids) == 1:
            message = (
                f"Job id {listed} has no tag: define one with registry.define('NAME', {listed}, ...) "
                "or connect with strict=False to run it untagged"
            )
        else:
            message = (
                f"Job ids {listed} have no tag: define one for each with "
                "registry.define('NAME', job_id, ...) or connect with strict=False to run them untagged"
            )
        JobTagsError.__init__(self, f"{message}; tagged job ids are {tagged}")


class ConfigError(JobTagsError, ValueError):
    """A setting, from an argument or an environment variable, is invalid."""


class MissingExtraError(JobTagsError, ImportError):
    """An optional integration was used without the package it needs.

    Attributes:
        package: the missing package.
        extra: the ``otel-jobtags`` extra that installs it.
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"otel_jobtags.contrib.{extra} needs the {package!r} package: "
            f"install otel-jobtags[{extra}] (pip install 'otel-jobtags[{extra}]')"
        )


class StoreError(JobTagsError):
    """The embedded store (``otel-jobtags serve``'s database) cannot do what was asked."""


class StoreQueryError(StoreError, ValueError):
    """A query of the embedded store has an invalid filter (the message names it and what to pass)."""


class LokiError(JobTagsError):
    """Loki could not be reached, or answered with an error.

    Attributes:
        status: the HTTP status, when Loki answered.
        body: what Loki said (its error text), when it answered.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class MarkerError(JobTagsError, ValueError):
    """A document lacks the marker comments, or has them twice or in the wrong order."""


class SpoolError(JobTagsError):
    """A spool file failed its checks (truncated, corrupt, unknown format)."""


class UntrustedSpoolError(JobTagsError, PermissionError):
    """The spool directory or its key is not this user's alone; the message says what to do."""


class PayloadError(JobTagsError, ValueError):
    """An export's payload is not a valid OTLP logs request."""

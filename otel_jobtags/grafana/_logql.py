"""LogQL for the job fields: Loki's names for OpenTelemetry attributes, safe literals, job selectors.

One place decides how a job is selected in Loki, so the dashboards, the alert
rules and the query client always agree with each other and with
``loki/loki-config.yaml``.
"""

from __future__ import annotations

import re
from typing import Literal

from ..errors import ConfigError
from ..handler import ATTR_JOB_TAG

__all__ = [
    "DEFAULT_JOB_TAG_AS",
    "JobTagAs",
    "job_selector",
    "logql_regex",
    "logql_string",
    "loki_field",
]

_INVALID_FIELD_CHAR = re.compile(r"[^A-Za-z0-9_]")

JobTagAs = Literal["index_label", "structured_metadata"]
"""How Loki stores ``job_tag``: an index (stream) label, or structured metadata."""

DEFAULT_JOB_TAG_AS: JobTagAs = "index_label"
"""``job_tag`` is an index label: ``loki-config.yaml`` promotes the ``job.tag``
log attribute with ``limits_config.otlp_config.log_attributes`` (``action:
index_label``). Generate with ``"structured_metadata"`` when it does not."""


def loki_field(attribute: str) -> str:
    """The name Loki gives an OpenTelemetry attribute (label or structured metadata).

    Loki's OTLP ingestion (``otlptranslator.NormalizeLabel``) replaces every
    character other than ``A-Z a-z 0-9 _`` with ``_``, prefixes a name that
    then starts with a digit with ``key_``, and one that starts with a single
    ``_`` with ``key``:

    >>> loki_field("job.tag"), loki_field("service.name"), loki_field("2fa.code"), loki_field("_x")
    ('job_tag', 'service_name', 'key_2fa_code', 'key_x')

    Raises:
        ConfigError: ``attribute`` is empty.
    """
    if not attribute:
        raise ConfigError("Invalid attribute name '': give an OpenTelemetry attribute name, e.g. 'job.tag'")
    name = _INVALID_FIELD_CHAR.sub("_", attribute)
    if name[0].isdigit():
        return "key_" + name
    if name.startswith("_") and not name.startswith("__"):
        return "key" + name
    return name


def logql_string(value: str) -> str:
    r"""``value`` as a LogQL double-quoted string literal that reads back as exactly ``value``.

    LogQL strings follow Go's syntax: backslash and double quote are escaped,
    control characters written as escapes (a raw newline is not allowed in a
    double-quoted string); everything else, backticks included, stays as it is.

    >>> print(logql_string('say "hi" \\ bye'))
    "say \"hi\" \\ bye"

    Raises:
        ConfigError: ``value`` is not valid Unicode text (a lone surrogate).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"Invalid text {value!r}: it is not valid Unicode") from None
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def logql_regex(text: str) -> str:
    """An RE2 regular expression that matches ``text`` literally (Go's ``regexp.QuoteMeta``).

    Use it for ``|~`` and ``=~``; the result still has to go through
    :func:`logql_string` to be placed in a query.
    """
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in text)


def job_selector(
    job: str,
    *,
    regex: bool = False,
    service: str = "$service",
    job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS,
) -> str:
    """The LogQL log selector for the records of one job, or of several.

    >>> job_selector("AUTO_REBAL")
    '{service_name=~"$service", job_tag="AUTO_REBAL"}'
    >>> job_selector("AUTO_REBAL", job_tag_as="structured_metadata", service="web")
    '{service_name=~"web"} | job_tag="AUTO_REBAL"'

    Args:
        job: a tag name, a Grafana variable (``$job``) or, with ``regex``, a
            regular expression such as ``A|B``.
        regex: match ``job`` as a regular expression (``=~``).
        service: a regular expression for ``service_name`` (``".+"`` for every
            service, or a Grafana variable).
        job_tag_as: ``"index_label"`` puts the job in the stream selector;
            ``"structured_metadata"`` filters on it right after the selector.
            It must match how Loki stores ``job.tag`` (``loki-config.yaml``).

    Raises:
        ConfigError: ``job_tag_as`` is neither.
    """
    service_matcher = f"{loki_field('service.name')}=~{logql_string(service)}"
    job_matcher = f"{loki_field(ATTR_JOB_TAG)}{'=~' if regex else '='}{logql_string(job)}"
    if job_tag_as == "index_label":
        return f"{{{service_matcher}, {job_matcher}}}"
    if job_tag_as == "structured_metadata":
        return f"{{{service_matcher}}} | {job_matcher}"
    raise ConfigError(f"Invalid job_tag_as={job_tag_as!r}: use 'index_label' or 'structured_metadata'")

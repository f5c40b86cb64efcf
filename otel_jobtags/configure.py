"""``install()``: one call that connects an application's logging to OpenTelemetry.

Settings resolve in the order argument, then environment variable (the
standard ``OTEL_*`` ones), then default, and are checked when they are read:
an invalid value raises :class:`~otel_jobtags.ConfigError` naming the variable
and the value (resolution and checks live in :mod:`otel_jobtags._settings`;
its public names are re-exported here).

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from . import _flags
from . import context as _context
from ._exit import ExitHook
from ._settings import (
    LOGS_EXPORTER_VARIABLE,
    DeliverySettings,
    DiscardExporter,
    Settings,
    check_spool_dir,
    logs_exporter,
    make_exporter,
    resolve_delivery_settings,
    resolve_settings,
    spool_error,
)
from .attachment import Attachment
from .attribution import PREFIX_ATTRIBUTION_VARIABLE, STRICT_VARIABLE
from .delivery import DeliveryProcessor, DeliveryStats
from .delivery.internal import exporting
from .errors import ConfigError
from .handler import BODY_PREFIX_VARIABLE, JobTagHandler
from .logfiles import parse_level
from .pipeline_logs import PipelineLogs, resolve_pipeline_logs
from .spool import Spool
from .tags import TagRegistry

__all__ = [
    "DeliverySettings",
    "Installation",
    "Settings",
    "current_installation",
    "default_exporter",
    "install",
    "resolve_delivery_settings",
    "resolve_settings",
    "uninstall",
]


class Installation:
    """What :func:`install` set up, with the means to flush and undo it."""

    def __init__(
        self,
        *,
        provider: LoggerProvider,
        handler: JobTagHandler,
        processor: DeliveryProcessor,
        settings: Settings | None,
        delivery: DeliverySettings,
        logger: logging.Logger,
        previous_level: int | None,
        previous_registry: TagRegistry | None,
        attachment: Attachment | None = None,
        pipeline_logs: PipelineLogs | None = None,
    ) -> None:
        self.provider = provider
        """The SDK ``LoggerProvider`` records are emitted to."""
        self.handler = handler
        """The handler added to the logger."""
        self.processor = processor
        """The log record processor feeding the exporter."""
        self.settings = settings
        """The resolved export settings (``None`` with a custom exporter)."""
        self.delivery = delivery
        """The resolved queue, spool and shutdown settings."""
        self._logger = logger
        self._previous_level = previous_level
        self._previous_registry = previous_registry
        self._attachment = attachment
        self._pipeline_logs = pipeline_logs
        self._closed = False
        self._detached = False
        self._lock = threading.Lock()
        self._exit_hook: ExitHook | None = None

    @property
    def resource(self) -> Resource:
        """The resource attached to every exported record."""
        return self.provider.resource  # type: ignore[no-any-return]

    @property
    def stats(self) -> DeliveryStats:
        """Delivery counters: emitted, delivered, queued, dropped, rejected, failed exports."""
        return self.processor.stats

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything logged so far; ``True`` when it was delivered in time."""
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        """Flush, stop exporting and leave logging exactly as it was before ``install``.

        Delivery of what is left takes at most ``delivery.shutdown_timeout``
        seconds; what is still undelivered then is reported on stderr (and kept
        in the spool, when there is one).
        """
        global _installation
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with _install_lock:
            if not self._detached:
                self._logger.removeHandler(self.handler)
                self._release()
                self._restore_logging()
            self.handler.close()
            if _installation is self:
                _installation = None
        if self._exit_hook is not None:
            self._exit_hook.cancel()
        self.provider.shutdown()

    def _release(self) -> None:
        """Stop guarding the logging configuration and the pipeline loggers."""
        if self._attachment is not None:
            self._attachment.detach()
        if self._pipeline_logs is not None:
            self._pipeline_logs.restore()

    def _restore_logging(self) -> None:
        if self._previous_level is not None:
            self._logger.setLevel(self._previous_level)
        if _context.active_registry() is self.handler.job_filter.registry:
            _context.use_registry(self._previous_registry)

    def _detach(self, replacement: tuple[logging.Logger, logging.Handler]) -> None:
        """Give this installation's place to ``replacement`` (a logger and a handler) in one step.

        Every record reaches exactly one of the two handlers: on the same
        logger the handler list is replaced by one assignment, which a log
        call sees either before or after. This installation still delivers
        what it holds when it is shut down.
        """
        target, handler = replacement
        self._detached = True
        queue = getattr(handler, "queue", None)
        if queue is not None:
            # A log call that took the old handler just before the swap hands
            # its record over to the new installation, never to a closed queue.
            self.processor.queue.successor = queue
            self.handler.queue = queue
        logger = self._logger
        if logger is target and self.handler in logger.handlers:
            logger.handlers = [handler if h is self.handler else h for h in logger.handlers]
        else:
            target.addHandler(handler)
            logger.removeHandler(self.handler)
        self._release()  # the replacement guards them from now on
        self._restore_logging()

    def __enter__(self) -> Installation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_installation: Installation | None = None
_install_lock = threading.RLock()


_log = logging.getLogger("otel_jobtags")


_exporter_overrides: list[Callable[[], LogRecordExporter]] = []


@contextmanager
def default_exporter(factory: Callable[[], LogRecordExporter]) -> Iterator[None]:
    """Within the block, ``install()`` calls without an ``exporter`` export with ``factory()``.

    For test suites whose application calls ``install()`` itself; see
    :func:`otel_jobtags.testing.capture_exports`. Blocks nest; the innermost wins.
    """
    _exporter_overrides.append(factory)
    try:
        yield
    finally:
        _exporter_overrides.remove(factory)


def _start_summary(
    settings: Settings | None,
    exporter_name: str | None,
    exporter: LogRecordExporter | None,
    registry: TagRegistry | None,
) -> str:
    if settings is not None:
        where = f"exporting logs to {settings.endpoint} over {settings.protocol}"
    elif exporter_name == "none":
        where = f"not exporting logs ({LOGS_EXPORTER_VARIABLE}=none)"
    elif exporter_name == "console":
        where = f"exporting logs to the console ({LOGS_EXPORTER_VARIABLE}=console)"
    else:
        where = f"exporting logs with {type(exporter).__name__}"
    names = [tag.name for tag in registry] if registry is not None else []
    jobs = f"{len(names)} jobs ({', '.join(names)})" if names else "no job registry"
    return f"{where}; {jobs}"


def install(
    registry: TagRegistry | None = None,
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    level: int | str | None = None,
    exporter: LogRecordExporter | None = None,
    logger: logging.Logger | None = None,
    max_queue_records: int | None = None,
    max_queue_bytes: int | None = None,
    shutdown_timeout: float | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    export_timeout: float | None = None,
    body_prefix: bool | None = None,
    prefix_attribution: bool | None = None,
    strict: bool | None = None,
    pipeline_logs: str | None = None,
) -> Installation:
    """Export the application's logs over OTLP, each record attributed to its job.

    Sets up a resource (``service.name``, ``service.instance.id``,
    ``process.pid``, ``host.name``), an OTLP exporter, a processor and a
    :class:`~otel_jobtags.handler.JobTagHandler` on the root logger, and makes
    ``registry`` the active one. Calling it again replaces the previous
    installation (records are never exported twice).

    Args:
        registry: the application's tags.
        service_name: ``service.name``; else ``OTEL_SERVICE_NAME``, else the SDK default.
        endpoint: collector URL; else ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``/
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4317``
            (``:4318`` for HTTP).
        protocol: ``"grpc"`` or ``"http/protobuf"``; else ``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``/
            ``OTEL_EXPORTER_OTLP_PROTOCOL``,
            else gRPC.
        headers: export headers; else ``OTEL_EXPORTER_OTLP_HEADERS`` and
            ``OTEL_EXPORTER_OTLP_LOGS_HEADERS``.
        resource_attributes: more resource attributes (``OTEL_RESOURCE_ATTRIBUTES``
            is read too; these win).
        level: if given, set on ``logger`` (and restored by ``shutdown``).
        exporter: use this exporter instead of OTLP (tests, custom sinks).
        logger: where to add the handler; the root logger by default.
        max_queue_records: records held until delivered before the oldest are
            dropped; else ``OTEL_JOBTAGS_MAX_QUEUE_RECORDS``, else 250,000.
        max_queue_bytes: estimated bytes held (body length plus 1 KiB per
            record) before the oldest are dropped; else
            ``OTEL_JOBTAGS_MAX_QUEUE_BYTES``, else 256 MiB.
        shutdown_timeout: seconds the exit may spend delivering what is left;
            else ``OTEL_JOBTAGS_SHUTDOWN_TIMEOUT``, else 5.
        spool_dir: keep batches on disk until delivered, and deliver what an
            earlier process left there; else ``OTEL_JOBTAGS_SPOOL_DIR``, else
            memory only.
        export_timeout: seconds one OTLP export attempt may take (failed
            attempts are retried with backoff); else
            ``OTEL_JOBTAGS_EXPORT_TIMEOUT``, else 2.
        body_prefix: start each exported body with its ``[TAG] `` (the text-log
            habit); ``False`` exports the body as logged, so a JSON body stays
            JSON (the ``job.*`` attributes are there either way); else
            ``OTEL_JOBTAGS_BODY_PREFIX``, else on.
        prefix_attribution: attribute a record logged outside any job by a
            registered ``[TAG] `` prefix at the start of its message (how
            ``format_background_log`` call sites are attributed); else
            ``OTEL_JOBTAGS_PREFIX_ATTRIBUTION``, else on. An active job always
            wins over a prefix.
        strict: raise :class:`~otel_jobtags.UnknownJobError` from a log call
            whose ``extra={"job_tag"/"job_id": ...}`` names no registered job
            (for test suites); else ``OTEL_JOBTAGS_STRICT``, else off (said once
            per value on stderr).
        pipeline_logs: where the records the OpenTelemetry SDK, the exporters
            and gRPC log about themselves go: ``"stderr"`` (throttled, WARNING
            and above, never to the application's handlers) or ``"propagate"``
            (to the application's handlers as well; still never exported);
            else ``OTEL_JOBTAGS_PIPELINE_LOGS``, else ``"stderr"``.

    The exporter is chosen by ``exporter``, else ``OTEL_LOGS_EXPORTER``:
    ``otlp`` (the default), ``console`` (the SDK's console exporter, on
    stdout) or ``none`` (records are attributed and counted, and discarded:
    for test suites, which then pay nothing at exit).

    Logging may be configured before or after ``install()``: ``basicConfig``
    (with or without ``force=True``) and ``dictConfig`` keep the export
    handler (see :class:`~otel_jobtags.ExportHandler` to place it in a
    configuration yourself). When it is lost anyway, or the levels let
    nothing at INFO through, it is said once on stderr. A one-line summary
    of where records go is logged at INFO on the ``otel_jobtags`` logger.

    Returns:
        An :class:`Installation`; its ``shutdown()`` (also run at exit) undoes everything.

    Raises:
        ConfigError: a setting is invalid.
    """
    settings = None
    if exporter is None and _exporter_overrides:
        exporter = _exporter_overrides[-1]()
    exporter_name = logs_exporter() if exporter is None else None
    if exporter_name == "none":
        exporter = DiscardExporter()
    elif exporter_name == "console":
        exporter = ConsoleLogRecordExporter()
    if exporter is None:
        settings = resolve_settings(
            endpoint=endpoint, protocol=protocol, headers=headers, service_name=service_name
        )
    elif service_name is not None and not service_name.strip():
        raise ConfigError("Invalid service_name='': give the name of the application, e.g. 'web'")
    delivery = resolve_delivery_settings(
        max_queue_records=max_queue_records,
        max_queue_bytes=max_queue_bytes,
        shutdown_timeout=shutdown_timeout,
        spool_dir=spool_dir,
        export_timeout=export_timeout,
    )
    # Checked before anything changes, so a bad value leaves logging as it was.
    body_prefix = _flags.resolve_flag(body_prefix, BODY_PREFIX_VARIABLE, True)
    prefix_attribution = _flags.resolve_flag(prefix_attribution, PREFIX_ATTRIBUTION_VARIABLE, True)
    strict = _flags.resolve_flag(strict, STRICT_VARIABLE, False)
    pipeline = resolve_pipeline_logs(pipeline_logs)
    level = parse_level(level)

    resource = Resource.create({"process.pid": os.getpid()})  # OTEL_RESOURCE_ATTRIBUTES applies
    if "host.name" not in resource.attributes:
        # With the pid, it names the process that wrote a record: a job run by two
        # processes (a scheduler per worker) shows up on dashboards and alerts.
        resource = resource.merge(Resource({"host.name": socket.gethostname()}))
    extra = dict(resource_attributes or {})
    if service_name is not None:
        extra["service.name"] = service_name
    if extra:
        resource = resource.merge(Resource(extra))
    # A stable id given by the argument or OTEL_RESOURCE_ATTRIBUTES is kept;
    # otherwise each process gets its own (and each forked child a new one).
    generated_instance_id = "service.instance.id" not in resource.attributes
    if generated_instance_id:
        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))

    if delivery.spool_dir is not None:
        # Check the directory before the previous installation is shut down,
        # so a bad setting leaves the running one in place.
        check_spool_dir(delivery.spool_dir)

    with _install_lock:
        previous = _installation
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        fork_exporter = None
        if exporter is None:
            assert settings is not None
            export_settings, export_timeout = settings, delivery.export_timeout

            def fork_exporter() -> LogRecordExporter:
                return make_exporter(export_settings, export_timeout)

        try:
            processor = DeliveryProcessor(
                exporter if exporter is not None else fork_exporter(),
                fork_exporter=fork_exporter,
                new_instance_id_after_fork=generated_instance_id,
                max_queue_records=delivery.max_queue_records,
                max_queue_bytes=delivery.max_queue_bytes,
                shutdown_timeout=delivery.shutdown_timeout,
                spool=Spool(delivery.spool_dir) if delivery.spool_dir is not None else None,
                resource=lambda: provider.resource,
            )
        except OSError as exc:  # only the spool directory does I/O here
            raise spool_error(delivery.spool_dir, exc) from None
        provider.add_log_record_processor(processor)
        target = logger if logger is not None else logging.getLogger()
        handler = JobTagHandler(
            provider,
            registry=registry,
            body_prefix=body_prefix,
            prefix_attribution=prefix_attribution,
            strict=strict,
            queue=processor.queue,
        )
        if previous is not None:
            # The new handler takes the old one's place in one step, so every
            # record reaches exactly one of them; the old one then delivers
            # what it holds (see Installation.shutdown).
            previous._detach(replacement=(target, handler))
        previous_level = None
        if level is not None:
            previous_level = target.level
            target.setLevel(level)
        # For the operator, not for the export (the previous installation's
        # handler, or the new one, may already be on the logger).
        with exporting():
            active = registry or _context.active_registry()
            _log.info(_start_summary(settings, exporter_name, exporter, active))
        attachment = Attachment(handler, target, level)
        attachment.attach()  # adds the handler unless it took the previous one's place
        pipeline_logs_guard = PipelineLogs()
        if pipeline == "stderr":
            pipeline_logs_guard.divert()
        previous_registry = (
            _context.use_registry(registry) if registry is not None else _context.active_registry()
        )
        installation = Installation(
            provider=provider,
            handler=handler,
            processor=processor,
            settings=settings,
            delivery=delivery,
            logger=target,
            previous_level=previous_level,
            previous_registry=previous_registry,
            attachment=attachment,
            pipeline_logs=pipeline_logs_guard,
        )
        _set_installation(installation)
    if previous is not None:
        previous.shutdown()
    # At exit, and at the end of multiprocessing's forked children, which
    # skip atexit (they end through os._exit).
    installation._exit_hook = ExitHook(installation.shutdown)
    return installation


def _set_installation(installation: Installation) -> None:
    global _installation
    _installation = installation


def current_installation() -> Installation | None:
    """The installation :func:`install` set up and that is still running, if any."""
    return _installation


def uninstall() -> None:
    """Undo :func:`install` (if installed): flush, remove the handler, restore logging."""
    with _install_lock:
        current = _installation
    if current is not None:
        current.shutdown()

"""Keeping the export handler attached whatever order the application configures logging in.

``logging.basicConfig`` does nothing when the root logger has a handler, and
``dictConfig`` and ``basicConfig(force=True)`` remove (and close) the
handlers they find -- so, unguarded, ``install()`` before the application's
own logging setup either disables that setup or is silently undone by it.
While an installation is in effect:

- ``logging.basicConfig`` and ``logging.config.dictConfig`` are wrapped: the
  export handler steps aside while they run and is put back afterwards
  (unless the configuration placed an :class:`ExportHandler` itself), so any
  order works; and the library's own loggers (run records, the start
  summary) are not left disabled by ``disable_existing_loggers``;
- a configuration that lists ``{"class": "otel_jobtags.ExportHandler"}``
  among its handlers decides itself where the export sits (with its level,
  filters and formatter), before or after ``install()``;
- if the handler is lost anyway (a configuration function imported before
  ``install()`` ran, so not wrapped), or the levels let nothing at INFO
  through to it, the operator is told once on stderr.

``uninstall()`` puts the original functions back.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import logging
import logging.config
import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import _diagnostics

__all__ = ["CHECK_DELAY", "Attachment", "ExportHandler", "current_attachment"]

CHECK_DELAY = 1.0
"""Seconds after ``install()`` at which the handler's attachment and the levels are checked."""

_current: Attachment | None = None
_lock = threading.RLock()
_slots: weakref.WeakSet[ExportHandler] = weakref.WeakSet()
_original_basic_config: Callable[..., None] = logging.basicConfig
_original_dict_config: Callable[[Any], None] = logging.config.dictConfig


class ExportHandler(logging.Handler):
    """``install()``'s export as a handler entry of the application's logging configuration.

    ``dictConfig`` example (before or after ``install()``)::

        "handlers": {
            "otel": {"class": "otel_jobtags.ExportHandler", "level": "INFO"},
            "file": {...},
        },
        "root": {"level": "INFO", "handlers": ["file", "otel"]},

    Records reaching it are handed to the running installation's handler
    (attributed, exported); before ``install()`` and after ``uninstall()``
    they are not exported. A formatter set on it renders the exported body.
    With an ``ExportHandler`` on the logger it would use, ``install()``
    adds no handler of its own, so nothing is exported twice.
    """

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        _slots.add(self)

    def handle(self, record: logging.LogRecord) -> bool:
        """Hand ``record`` to the installation's handler, after this handler's own filters."""
        attachment = _current
        if attachment is None:
            return False
        rv = self.filter(record)
        if not rv:
            return False
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = rv
        target = attachment.handler
        if self.formatter is not None and target.formatter is not self.formatter:
            target.setFormatter(self.formatter)
        return bool(target.handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        """Not used: :meth:`handle` hands records on."""


def current_attachment() -> Attachment | None:
    """The attachment of the running installation, if any."""
    return _current


def _has_slot(logger: logging.Logger) -> bool:
    return any(isinstance(h, ExportHandler) for h in logger.handlers)


class Attachment:
    """One installation's export handler on its logger, kept there across logging configuration.

    Args:
        handler: the export handler.
        logger: the logger it belongs on.
        explicit_level: the level ``install()`` was given (no level warning while it holds).
    """

    def __init__(self, handler: logging.Handler, logger: logging.Logger, explicit_level: int | None) -> None:
        self.handler = handler
        self.logger = logger
        self.explicit_level = explicit_level
        self._warned: set[str] = set()
        self._timer: threading.Timer | None = None

    def attach(self) -> None:
        """Add the handler (unless an :class:`ExportHandler` is there), wrap the configuration functions."""
        global _current
        with _lock:
            if not _has_slot(self.logger):
                self.logger.addHandler(self.handler)
            _current = self
            logging.basicConfig = _basic_config
            logging.config.dictConfig = _dict_config
        timer = threading.Timer(CHECK_DELAY, self.check)
        timer.daemon = True
        timer.name = "otel-jobtags-check"
        self._timer = timer
        timer.start()

    def detach(self) -> None:
        """Remove the handler and put the configuration functions back."""
        global _current
        if self._timer is not None:
            self._timer.cancel()
        with _lock:
            self.logger.removeHandler(self.handler)
            if _current is self:
                _current = None
                if logging.basicConfig is _basic_config:
                    logging.basicConfig = _original_basic_config
                if logging.config.dictConfig is _dict_config:
                    logging.config.dictConfig = _original_dict_config  # type: ignore[assignment]

    def step_aside(self) -> bool:
        """Take the handler off its logger for a configuration call; ``True`` if it was there."""
        with _lock:
            there = self.handler in self.logger.handlers
            if there:
                self.logger.removeHandler(self.handler)
            return there

    def put_back(self, created_slots: bool) -> None:
        """After a configuration call: re-add the handler unless the configuration placed the export."""
        with _lock:
            if _current is not self:
                return
            if not created_slots and not _has_slot(self.logger) and self.handler not in self.logger.handlers:
                self.logger.addHandler(self.handler)
        self.check()

    def check(self) -> None:
        """Say once on stderr if nothing is exported, or nothing at INFO, and why."""
        if _current is not self:
            return
        attached = self.handler in self.logger.handlers or any(_attached(slot) for slot in list(_slots))
        name = self.logger.name if self.logger.name != "root" else "root"
        if not attached:
            self._warn_once(
                "lost",
                "the export handler was removed by a logging configuration that ran after "
                "otel_jobtags.install(): nothing is exported. Call install() after configuring "
                "logging, or list {'class': 'otel_jobtags.ExportHandler'} among the configuration's handlers",
            )
            return
        level = max(self.logger.getEffectiveLevel(), self.handler.level)
        if level <= logging.INFO or self.logger.disabled:
            return
        if self.explicit_level is not None and self.logger.level == self.explicit_level:
            return  # the application chose it
        self._warn_once(
            "level",
            f"the {name} logger's level is {logging.getLevelName(level)}: records at INFO and below are "
            "not exported. Pass otel_jobtags.install(level='INFO') or set the level in your logging "
            "configuration",
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _diagnostics.write(message)


def _attached(slot: ExportHandler) -> bool:
    manager = logging.Logger.manager
    loggers = [
        logging.getLogger(),
        *(x for x in manager.loggerDict.values() if isinstance(x, logging.Logger)),
    ]
    return any(slot in logger.handlers for logger in loggers)


def _basic_config(**kwargs: Any) -> None:
    attachment = _current
    if attachment is None or attachment.logger is not logging.getLogger():
        _original_basic_config(**kwargs)
        if attachment is not None:
            attachment.check()
        return
    attachment.step_aside()
    try:
        _original_basic_config(**kwargs)
    finally:
        attachment.put_back(created_slots=False)


def _dict_config(config: Any) -> None:
    attachment = _current
    before = set(_slots)
    try:
        _original_dict_config(config)
    finally:
        if attachment is not None:
            _enable_own_loggers(config)
            attachment.put_back(created_slots=bool(set(_slots) - before))


def _enable_own_loggers(config: Any) -> None:
    # dictConfig's default disable_existing_loggers=True silences every logger
    # that exists and is not named -- ours included (run records, the start
    # summary), which the application never meant to switch off. A
    # configuration that names one of them decides for itself.
    named = set(config.get("loggers", {})) if isinstance(config, dict) else set()
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not logger.disabled:
            continue
        if name != "otel_jobtags" and not name.startswith("otel_jobtags."):
            continue
        if any(name == n or name.startswith(n + ".") for n in named):
            continue
        logger.disabled = False

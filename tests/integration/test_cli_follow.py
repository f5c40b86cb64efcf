"""`otel-jobtags logs -f`: following a log file that rotates, for a real while (``--max-seconds``)."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import threading
import time
from pathlib import Path

import pytest

from otel_jobtags import cli


@pytest.fixture(autouse=True)
def _no_registry_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_JOBTAGS_REGISTRY", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class _CountingRotatingFileHandler(logging.handlers.RotatingFileHandler):
    rollovers = 0

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        self.rollovers += 1
        super().doRollover()


def _descriptors_open_on(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` now (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_follow_prints_new_records_across_rotation_until_max_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    # Several rotations per poll (0.25 s), none deleted: all must be read.
    handler = _CountingRotatingFileHandler(path, maxBytes=250, backupCount=20, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("test_cli_logs.follow")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("[AUTO_REBAL] history")
    rotations_while_followed: list[int] = []
    followed: list[bool] = []

    def write() -> None:
        # Start writing once the follower has the file open (the handler holds
        # the other descriptor), so that every rotation happens under it.
        deadline = time.monotonic() + 20
        while _descriptors_open_on(path) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        followed.append(_descriptors_open_on(path) >= 2)
        before = handler.rollovers
        for i in range(8):
            logger.info("[AUTO_REBAL] live %d", i)
            logger.info("[PRICE_CACHE] other %d", i)
            time.sleep(0.02)
        rotations_while_followed.append(handler.rollovers - before)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        code, out, err = run(capsys, "logs", "-f", "--max-seconds", "3", "-j", "AUTO_REBAL", str(path))
    finally:
        writer.join()
        logger.removeHandler(handler)
        handler.close()
    assert (code, err) == (0, "")
    assert followed == [True]
    assert rotations_while_followed[0] >= 2  # it rotated (several times) while being followed
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == ["[AUTO_REBAL] history"] + [
        f"[AUTO_REBAL] live {i}" for i in range(8)
    ]

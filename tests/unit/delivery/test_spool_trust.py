"""The spool keeps records private and trusts only the batches it wrote itself.

A record can hold a secret (a token in a URL, an e-mail address), and a batch
in the spool is exported as if the application had logged it. So the spool's
directory and files are the user's alone, a half-written file never stays,
and a batch that another user, another spool or a tamperer made is refused
with a warning instead of being exported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from support.prerequisites import unavailable

import otel_jobtags as oj
from otel_jobtags.spool import KEY_NAME, Spool

NOBODY = 65534


class Unreachable(LogRecordExporter):
    """A receiver that is down: every export fails, so batches stay in the spool."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return False

    def shutdown(self) -> None:
        pass


def spool_records(directory: Path, *bodies: str) -> None:
    """Leave batches of ``bodies`` in ``directory`` as a process that could not deliver them does.

    The exit keeps what is undelivered in the spool however short its timeout.
    """
    installation = oj.install(exporter=Unreachable(), spool_dir=directory, shutdown_timeout=0.2)
    log = logging.getLogger("app.spooled")
    log.setLevel(logging.INFO)
    for body in bodies:
        log.info(body)
    installation.shutdown()


def delivered_from(directory: Path) -> list[str]:
    """What a new process with this spool delivers of what it finds there."""
    sink = InMemoryLogRecordExporter()
    installation = oj.install(exporter=sink, spool_dir=directory)
    assert installation.force_flush(10_000)
    installation.shutdown()
    return [str(r.log_record.body) for r in sink.get_finished_logs()]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_spool_directory_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool_records(directory, "token=s3cr3t")

    assert mode(directory) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert KEY_NAME in names
    assert any(n.endswith(".batch") for n in names)
    assert {n: mode(directory / n) for n in names} == {n: 0o600 for n in names}


def test_an_existing_spool_directory_open_to_others_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)

    spool_records(directory, "token=s3cr3t")

    assert mode(directory) == 0o700


def test_a_spool_directory_of_another_user_is_refused_at_install(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        unavailable("only root can give a directory to another user")
    directory = tmp_path / "spool"
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)

    with pytest.raises(
        oj.ConfigError,
        match=rf"^Cannot use the spool directory '{re.escape(str(directory))}': it is owned by uid "
        rf"{NOBODY}, not by this user \(uid 0\); use a directory of this user's, which the spool keeps "
        r"private \(mode 0700\)$",
    ):
        oj.install(exporter=InMemoryLogRecordExporter(), spool_dir=directory)


def test_a_batch_copied_from_another_spool_is_refused_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Well-formed, as the application would write it, but made elsewhere: by
    # someone who can write to the directory, not by this spool.
    victim, elsewhere = tmp_path / "spool", tmp_path / "elsewhere"
    spool_records(victim, "mine")
    spool_records(elsewhere, "planted: transfer approved")
    for planted in elsewhere.glob("*.batch"):
        shutil.copy(planted, victim / planted.name)
    capsys.readouterr()

    assert delivered_from(victim) == ["mine"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "skipping spool file" in line]
    assert len(warnings) == 1
    assert re.fullmatch(
        r"otel-jobtags: skipping spool file .*\.batch: .*\.batch: checksum mismatch \(damaged, or not "
        r"written by this spool: its HMAC does not match spool\.key\); kept as .*\.batch\.corrupt",
        warnings[0],
    )


def test_a_batch_owned_by_another_user_is_refused_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        unavailable("only root can give a file to another user")
    directory = tmp_path / "spool"
    spool_records(directory, "given away")
    (batch,) = directory.glob("*.batch")
    os.chown(batch, NOBODY, NOBODY)
    capsys.readouterr()

    assert delivered_from(directory) == []
    assert capsys.readouterr().err.splitlines() == [
        f"otel-jobtags: skipping spool file {batch}: {batch.name}: owned by uid {NOBODY}, not by this "
        f"user (uid 0); kept as {batch.name}.corrupt"
    ]


def test_a_batch_that_is_a_symbolic_link_is_refused_with_a_warning_and_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "spool"
    spool_records(directory, "mine")
    (mine,) = directory.glob("*.batch")
    link = mine.with_name(mine.name.replace("-0000000001.batch", "-0000000002.batch"))
    secret = tmp_path / "secret.batch"
    shutil.copy(mine, secret)  # a valid batch elsewhere: following the link would export it
    link.symlink_to(secret)
    capsys.readouterr()

    assert delivered_from(directory) == ["mine"]
    assert capsys.readouterr().err.splitlines() == [
        f"otel-jobtags: skipping spool file {link}: {link.name}: a symbolic link, not a file this spool "
        f"wrote; kept as {link.name}.corrupt"
    ]
    assert (directory / f"{link.name}.corrupt").is_symlink()
    assert secret.exists()


def test_a_key_file_others_can_read_is_refused_at_install(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool_records(directory, "x")
    os.chmod(directory / KEY_NAME, 0o644)

    with pytest.raises(
        oj.ConfigError,
        match=rf"^Cannot use the spool directory '{re.escape(str(directory))}': "
        rf"{re.escape(str(directory / KEY_NAME))} is not a key this user's spool made \(a 32-byte file of "
        r"this user's, mode 0600\); remove it to start the spool afresh$",
    ):
        oj.install(exporter=InMemoryLogRecordExporter(), spool_dir=directory)


_FILE_SIZE_LIMIT_SCRIPT = """
import logging, resource, signal, sys
import otel_jobtags as oj
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

class Unreachable(LogRecordExporter):
    def export(self, batch):
        return LogRecordExportResult.FAILURE
    def force_flush(self, timeout_millis=30_000):
        return False
    def shutdown(self):
        pass

# Writes past 4 KiB fail with EFBIG, as they would with ENOSPC on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
oj.install(exporter=Unreachable(), spool_dir=sys.argv[1], shutdown_timeout=0.5)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
for i in range(20):
    log.info("record %d %s", i, "x" * 1000)
"""


def test_a_write_that_fails_leaves_no_partial_file(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FILE_SIZE_LIMIT_SCRIPT), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "could not write to the spool: [Errno 27] File too large" in result.stderr
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


def test_temporary_files_a_dead_process_left_are_removed_when_its_batches_are_adopted(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "spool"
    dead = Spool(directory)
    dead.write([], 0)  # makes the directory, its key and the dead owner's lock
    (finished,) = directory.glob("*.batch")
    owner = finished.name.rpartition("-")[0]
    half_written = directory / f".{owner}-0000000002.batch.tmp"
    half_written.write_bytes(b"OJTSPOOL\x02 cut short by a crash")
    os.close(dead._lock_fd or -1)  # the process dies: its lock goes with it

    assert delivered_from(directory) == []
    assert sorted(p.name for p in directory.iterdir()) == [KEY_NAME]

# SPDX-License-Identifier: GPL-2.0-or-later
"""Temporary output files beside their destination, and their removal when a run is
killed.

Outputs are written to a hidden temporary file beside the destination and renamed onto
it when complete (:func:`~qgis_landcover.core.files.atomic.atomic_output`). An exception,
a cancel or Ctrl+C unwinds through that code, which deletes the file. What does not
unwind is a process killed by a signal, so this module:

- names temporary files so a later run can tell whose they are:
  ``.<destination name>.<pid>-<n>.tmp-landcover<suffix>``;
- keeps a process-wide registry of the temporary files being written, deleted (with
  their GDAL side-car files) by a SIGTERM / SIGHUP handler and at interpreter exit;
- deletes, before writing a destination, the temporary files of that same destination
  left by a process that is gone (or that are older than :data:`STALE_AFTER_SECONDS`).

The signal handler is installed only from the main thread (Python allows no other),
only while a temporary file is registered, and only over a handler that Python itself
manages: the default action (it is then re-raised after the clean-up, so the process
still dies of the signal) or a Python handler (it is then called after the clean-up).
A handler installed by C++ code (QGIS's) or an ignored signal is left alone, and the
previous handler is put back when the last temporary file is released. SIGINT is not
handled here: Python turns it into ``KeyboardInterrupt`` and ``qgis_process`` into a
cancel request, and both unwind through ``atomic_output``.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

SIDECARS = (".aux.xml", ".ovr", ".msk")
"""GDAL side-car files that follow their raster (statistics, overviews, masks)."""

TAG = ".tmp-landcover"
"""Marks a temporary output in its file name."""

STALE_AFTER_SECONDS = 7 * 24 * 3600.0
"""A temporary file not modified for this long is stale even if a process with the
pid in its name runs (pids are reused, e.g. in containers)."""

HANDLED_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_lock = threading.RLock()  # re-entrant: the signal handler runs on the main thread
_registered: set[Path] = set()
_previous: dict[int, Any] = {}  # signal -> the handler ours replaced
_counter = itertools.count()
_atexit_installed = False


def temporary_name(destination: Path, pid: int, number: int) -> str:
    """The file name of temporary file ``number`` of process ``pid`` for ``destination``."""
    return f".{destination.name}.{pid}-{number}{TAG}{destination.suffix or '.tmp'}"


def _stale_pattern(destination: Path) -> re.Pattern[str]:
    sidecars = "|".join(re.escape(extension) for extension in SIDECARS)
    return re.compile(
        rf"^\.{re.escape(destination.name)}\.(?P<pid>\d+)-\d+{re.escape(TAG)}"
        rf"{re.escape(destination.suffix or '.tmp')}(?P<sidecar>{sidecars})?$"
    )


def with_sidecars(path: Path) -> tuple[Path, ...]:
    """``path`` and the GDAL side-car files that may be written next to it."""
    return (path, *(Path(f"{path}{extension}") for extension in SIDECARS))


def remove_with_sidecars(path: Path) -> None:
    """Delete ``path`` and its side-car files; missing files and errors are ignored."""
    for candidate in with_sidecars(path):
        with suppress(OSError):
            candidate.unlink(missing_ok=True)


@contextmanager
def registered_temporary(destination: Path) -> Iterator[Path]:
    """Yield a new temporary path beside ``destination`` (nothing is created), in the
    registry until the block ends.

    Stale temporary files of the same destination are deleted first
    (:func:`remove_stale`). The caller renames or deletes the file; on a SIGTERM /
    SIGHUP or at exit while registered, it is deleted with its side-car files.
    """
    remove_stale(destination)
    with _lock:
        path = destination.with_name(temporary_name(destination, os.getpid(), next(_counter)))
        _register(path)
    try:
        yield path
    finally:
        _unregister(path)


def remove_stale(destination: Path, *, max_age: float = STALE_AFTER_SECONDS) -> list[Path]:
    """Delete the temporary files of ``destination`` (and their side-car files) that no
    running process is writing; return what was deleted.

    A file is stale when the process in its name is gone, when it is this process but
    the file is not in the registry (a previous process had the same pid), or when it
    was not modified for ``max_age`` seconds.
    """
    directory = destination.parent if str(destination.parent) else Path(".")
    return _remove_stale_matching(directory, _stale_pattern(destination), max_age)


_ANY_TEMPORARY = re.compile(
    rf"^\..+\.(?P<pid>\d+)-\d+{re.escape(TAG)}[^.]*(\.[^.]+)?"
    rf"(?P<sidecar>{'|'.join(re.escape(extension) for extension in SIDECARS)})?$"
)


def remove_stale_in(directory: Path, *, max_age: float = STALE_AFTER_SECONDS) -> list[Path]:
    """:func:`remove_stale` for every destination in ``directory`` at once (one listing):
    e.g. a many-tiles job's chunk folder after its worker processes are gone."""
    return _remove_stale_matching(directory, _ANY_TEMPORARY, max_age)


def _remove_stale_matching(directory: Path, pattern: re.Pattern[str], max_age: float) -> list[Path]:
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        path = directory / entry.name
        base = Path(str(path)[: len(str(path)) - len(match.group("sidecar") or "")])
        with _lock:
            if base in _registered:
                continue
        pid = int(match.group("pid"))
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if pid == os.getpid() or not _process_alive(pid) or age > max_age:
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def remove_registered() -> None:
    """Delete every registered temporary file and its side-car files (signal, exit)."""
    with _lock:
        paths = list(_registered)
    for path in paths:
        remove_with_sidecars(path)


def _register(path: Path) -> None:
    global _atexit_installed
    with _lock:
        _registered.add(path)
        if not _atexit_installed:
            atexit.register(remove_registered)
            _atexit_installed = True
        if not _previous:
            _install_handlers()


def _unregister(path: Path) -> None:
    with _lock:
        _registered.discard(path)
        if not _registered and _previous:
            _restore_handlers()


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install_handlers() -> None:
    if not _on_main_thread():
        return  # signal.signal works on the main thread only
    for number in HANDLED_SIGNALS:
        previous = signal.getsignal(number)
        if previous is None or previous == signal.SIG_IGN:
            continue  # set outside Python (C/C++), or ignored: not ours to change
        if not _python_owns_handler(number, previous):
            continue
        try:
            signal.signal(number, _on_signal)
        except (OSError, ValueError, RuntimeError):
            continue
        _previous[number] = previous


def _restore_handlers() -> None:
    if not _on_main_thread():
        return  # left in place (harmless: it only chains); restored by a later release
    for number, previous in list(_previous.items()):
        try:
            if signal.getsignal(number) is _on_signal:
                signal.signal(number, previous)
        except (OSError, ValueError, RuntimeError):
            pass
    _previous.clear()


def _on_signal(number: int, frame: FrameType | None) -> None:
    """Delete the temporary files, then do what the previous handler would have done."""
    remove_registered()
    previous = _previous.get(number, signal.SIG_DFL)
    if callable(previous):
        previous(number, frame)
        return
    # The default action (terminate): restore it and re-raise, so the process still
    # ends as killed by the signal (exit status, parent's view) and nothing else runs.
    signal.signal(number, signal.SIG_DFL)
    signal.raise_signal(number)


def _python_owns_handler(number: int, python_view: Any) -> bool:
    """Whether the handler really installed for ``number`` is the one Python reports.

    Python only knows the handlers set through its ``signal`` module; C/C++ code in the
    same process (QGIS does so for SIGINT in ``qgis_process``) may have replaced the
    real one since. Checked with ``sigaction`` where it can be called (POSIX); elsewhere
    Python's view is trusted.
    """
    actual = _actual_handler(number)
    if actual is _UNKNOWN:
        return True
    if python_view == signal.SIG_DFL:
        return actual == 0
    # A Python handler: the real one must be a function (Python's), not default/ignore.
    return actual not in (0, 1)


_UNKNOWN = object()


def _actual_handler(number: int) -> Any:
    """The address of the handler installed for ``number`` (0 default, 1 ignore), or
    ``_UNKNOWN`` when ``sigaction`` cannot be called."""
    if os.name != "posix":
        return _UNKNOWN
    try:
        sigaction: Callable[..., int] = ctypes.CDLL(None, use_errno=True).sigaction
        # struct sigaction starts with the handler on Linux and macOS; 512 bytes is
        # more than any platform's struct.
        buffer = ctypes.create_string_buffer(512)
        if sigaction(number, None, buffer) != 0:
            return _UNKNOWN
        return ctypes.c_void_p.from_buffer(buffer).value or 0
    except (OSError, AttributeError, TypeError):
        return _UNKNOWN


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (``True`` when it cannot be told)."""
    if pid <= 0:
        return False
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows: the age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it exists, owned by someone else
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not reaped yet (Linux ``/proc``): it writes
    nothing any more, though ``kill(pid, 0)`` still finds it. A killed worker is one
    until its parent (a pool, a Dask nanny) waits for it, while its chunk may already
    run again elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "Z"

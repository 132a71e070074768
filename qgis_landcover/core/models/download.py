# SPDX-License-Identifier: GPL-2.0-or-later
"""Download one file over HTTPS with integrity checks, resume and retries (``requests``).

The file is streamed in chunks to ``<destination>.part`` beside the destination, its
size and SHA-256 are checked, an optional validator (the model contract) reads it, and
only then is it renamed onto the destination, so the destination is either absent or a
complete, verified file. An interrupted or cancelled download keeps its ``.part`` file
(and a ``.part.json`` note of the server's ETag / Last-Modified) so the next call
resumes it with an HTTP ``Range`` request instead of starting again; the error message
names the kept file. Parts untouched for :data:`PART_MAX_AGE_SECONDS` are deleted by
the next download into the same folder.

The network calls (connecting, waiting for the answer, reading the body) run in a
helper thread while the calling thread checks, every :data:`POLL_SECONDS`, for a cancel
request and the overall time limit, so neither a silent nor a trickling server can
hold the caller (or Ctrl+C) for longer than that. The body is read as it arrives, so
the stall timeout (no byte for ``read_timeout`` seconds) and the progress reports see
every byte, and every byte received is kept for the resume.

Only ``https://`` URLs are fetched, plus ``http://`` to a literal loopback address
(``127.0.0.0/8``, ``::1``) or the name ``localhost`` (a local test or model server),
or when the caller opts in. Redirects are followed by hand so
every hop passes the same check. Proxies come from the ``proxies`` argument (the
QGIS algorithm passes QGIS's proxy settings) or, when it is ``None``, from the usual
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` environment variables.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from ..errors import CancelledError, ChecksumError, DownloadError, InputError
from ..files.checksum import file_sha256, normalize_sha256
from ..progress import NullProgress, Progress, check_cancelled
from ..units import format_bytes

ByteCallback = Callable[[int, int | None], None]
"""Called after each chunk with (bytes downloaded so far, total bytes or ``None``)."""

Validator = Callable[[Path], None]
"""Checks a complete download before it is renamed into place; raises to reject it."""

MIB = 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 408 Request Timeout and 429 Too Many Requests are worth another try, like 5xx.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
MAX_REDIRECTS = 10
USER_AGENT = "qgis-landcover (model download)"
POLL_SECONDS = 0.1
"""How often the calling thread checks for cancel and the time limit while waiting."""
PART_MAX_AGE_SECONDS = 7 * 24 * 3600.0
"""An unfinished download (``.part``) untouched for this long is deleted."""
_QUEUED_PIECES = 64  # body pieces read ahead of the file writes (at most 4 MiB)

T = TypeVar("T")


@dataclass(frozen=True)
class DownloadOptions:
    """Limits and policies of one download.

    Attributes:
        connect_timeout: seconds to wait for the TCP/TLS connection.
        read_timeout: the stall timeout: seconds without any byte from the server
            (waiting for its answer, or for the next bytes of the body) before the
            attempt fails and is retried.
        time_limit: seconds for the whole download (every attempt and the waits
            between them); ``None`` for no limit. The bytes received are kept.
        max_bytes: largest file accepted, in bytes (checked against the announced
            size before downloading and against the bytes received while downloading).
        retries: further attempts after a connection error, a timeout or an HTTP 5xx.
        backoff: seconds before the first retry; doubled before each further retry.
        allow_http: fetch plain ``http://`` URLs from any host, not only loopback.
        chunk_size: most bytes read at once; progress is reported per read.
    """

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    time_limit: float | None = 3600.0
    max_bytes: int = 2048 * MIB
    retries: int = 4
    backoff: float = 1.0
    allow_http: bool = False
    chunk_size: int = 64 * 1024


@dataclass(frozen=True)
class DownloadResult:
    """A completed, verified download.

    Attributes:
        path: the destination file.
        sha256: lowercase hexadecimal SHA-256 of the file.
        size: file size in bytes.
        requests: HTTP requests made (redirect hops included).
        resumed: whether bytes from an earlier, interrupted attempt were re-used.
    """

    path: Path
    sha256: str
    size: int
    requests: int
    resumed: bool


class _RetryableError(Exception):
    """An attempt failed in a way another attempt may fix (message for the log)."""


def is_loopback_host(host: str) -> bool:
    """True for the name ``localhost`` and the loopback IP literals ``127.0.0.0/8`` and
    ``::1``; never resolves a name (no DNS).

    Other names are not local even when they look it (``evil.localhost``,
    ``localhost.example.com``): they are resolved through DNS, which can point them
    anywhere.
    """
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_http: bool = False) -> str:
    """Return ``url`` stripped if it may be fetched, else raise :class:`InputError`.

    Accepted: ``https://host/...``; ``http://`` only to a loopback host or with
    ``allow_http``. Nothing is sent anywhere.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as error:
        raise InputError(f"Malformed URL {text!r}: {error}.") from error
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise InputError(f"Malformed or unsupported model URL {text!r} ({shown}); use https://.")
    if not host or any(character.isspace() for character in text):
        raise InputError(f"Malformed URL {text!r}: expected https://host/path.")
    if scheme == "http" and not (allow_http or is_loopback_host(host)):
        raise InputError(
            f"Refusing plain http:// download from {host}: it can be altered in transit. "
            f"Use https://, or explicitly allow plain HTTP."
        )
    return text


def partial_path(destination: Path) -> Path:
    """Where the unfinished bytes of ``destination`` are kept between attempts."""
    return destination.with_name(f"{destination.name}.part")


def _partial_note_path(destination: Path) -> Path:
    return destination.with_name(f"{destination.name}.part.json")


def expire_partial_downloads(
    folder: str | os.PathLike[str], *, max_age: float = PART_MAX_AGE_SECONDS
) -> list[Path]:
    """Delete the unfinished downloads in ``folder`` (a ``.part`` file and its
    ``.part.json`` note) that neither was modified for ``max_age`` seconds; return the
    deleted paths.

    Only parts with a note written by this module are touched, never another
    program's ``.part`` files.
    """
    removed: list[Path] = []
    now = time.time()
    for note in Path(folder).glob("*.part.json"):
        part = note.with_name(note.name[: -len(".json")])
        try:
            content = json.loads(note.read_text(encoding="utf-8"))
            newest = max(path.stat().st_mtime for path in (note, part) if path.exists())
        except (OSError, ValueError):
            continue
        if not isinstance(content, dict) or "url" not in content or now - newest <= max_age:
            continue
        for path in (part, note):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(path)
    return removed


class _BackgroundCall(Generic[T]):
    """``function()`` run in a daemon thread, so the caller can keep checking for a
    cancel request while it blocks (a connection, a silent server).

    An abandoned call finishes on its own (bounded by its socket timeouts); a response
    it returns after being abandoned is closed.
    """

    def __init__(self, function: Callable[[], T]) -> None:
        self.finished = threading.Event()
        self._function = function
        self._lock = threading.Lock()
        self._abandoned = False
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="landcover-download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            result = self._function()
        except BaseException as error:  # handed to the calling thread
            self._error = error
        else:
            with self._lock:
                if self._abandoned:
                    _close_quietly(result)
                else:
                    self._result = result
        self.finished.set()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            result, self._result = self._result, None
        _close_quietly(result)

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def _close_quietly(thing: Any) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        with suppress(Exception):  # closing an abandoned connection: best effort
            close()


def _read_available(raw: Any, size: int) -> bytes:
    """Up to ``size`` bytes of a streamed body, returned as soon as some arrive (at most
    one read from the socket); ``b""`` at the end of the body.

    Reading whole chunks instead would wait for ``size`` bytes: a server sending one
    byte every few seconds would hide its bytes, and any progress, for hours.
    ``raw`` is the urllib3 response under ``requests``: urllib3 >= 2.1 has ``read1``;
    with urllib3 1.26 the ``http.client`` response under it (``_fp``) has one, used for
    unencoded bodies only (as asked for with ``Accept-Encoding: identity``).
    """
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return read1(size, decode_content=True)
    underlying = getattr(raw, "_fp", None)
    encoding = (raw.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity" and hasattr(underlying, "read1"):
        return underlying.read1(size)
    return raw.read(size, decode_content=True)


def _shutdown_connection(response: requests.Response) -> None:
    """Shut the response's socket down, so a thread blocked reading it wakes up now
    instead of at its read timeout (best effort: urllib3 keeps the socket private)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_END = object()


def _closed_early(error: BaseException) -> bool:
    """Whether ``error`` says the server closed the connection before the announced end
    of the body (urllib3 2 raises it; 1.26 and ``http.client.read1`` return ``b""``)."""
    kinds = (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead)
    return isinstance(error, kinds) or any(isinstance(arg, kinds) for arg in error.args)


def _pump(
    response: requests.Response, pieces: queue.Queue[Any], stop: threading.Event, size: int
) -> None:
    """Read the body into ``pieces`` (bytes, then ``_END`` or the exception that ended
    it) until the end or until ``stop`` is set; runs in a helper thread."""
    item: Any = _END
    try:
        while not stop.is_set():
            piece = _read_available(response.raw, size)
            if not piece:
                break
            while not stop.is_set():
                try:
                    pieces.put(piece, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    continue
    except BaseException as error:  # handed to the calling thread
        item = error
    while not stop.is_set():
        try:
            pieces.put(item, timeout=POLL_SECONDS)
            return
        except queue.Full:
            continue


class _Download:
    """State of one :func:`download_file` call across its attempts."""

    def __init__(
        self,
        url: str,
        destination: Path,
        *,
        expected_size: int | None,
        has_checksum: bool,
        options: DownloadOptions,
        session: requests.Session,
        proxies: Mapping[str, str] | None,
        progress: Progress,
        on_bytes: ByteCallback | None,
    ) -> None:
        self.url = url
        self.destination = destination
        self.partial = partial_path(destination)
        self.note = _partial_note_path(destination)
        self.expected_size = expected_size
        self.has_checksum = has_checksum
        self.options = options
        self.session = session
        self.proxies = dict(proxies) if proxies is not None else None
        self.progress = progress
        self.on_bytes = on_bytes
        self.requests = 0
        self.resumed = False
        self.received = 0  # bytes in the partial file
        self.started = time.monotonic()
        self.deadline = (
            self.started + options.time_limit if options.time_limit is not None else None
        )

    # -- limits ---------------------------------------------------------------------

    def check_limits(self) -> None:
        """Raise :class:`CancelledError` on a cancel request, :class:`DownloadError`
        past the time limit."""
        check_cancelled(self.progress)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DownloadError(
                f"Download of {self.url} stopped: it did not finish within the time "
                f"limit of {self.options.time_limit:g} s ({format_bytes(self.received)} "
                f"received)."
            )

    def _in_background(self, function: Callable[[], T]) -> T:
        """``function()`` (a blocking network call) in a helper thread; meanwhile
        cancel and the time limit are checked every :data:`POLL_SECONDS`."""
        call = _BackgroundCall(function)
        call.start()
        try:
            while not call.finished.wait(POLL_SECONDS):
                self.check_limits()
        except BaseException:
            call.abandon()
            raise
        return call.outcome()

    def kept_part_note(self) -> str:
        """A sentence naming the kept partial file and how to resume it, or ``""``."""
        try:
            size = self.partial.stat().st_size
        except OSError:
            return ""
        if size == 0:
            return ""
        days = PART_MAX_AGE_SECONDS / 86400
        kept = f"The {format_bytes(size)} received so far are kept in {self.partial}"
        _, validators = self._note_state()
        if not validators and not self.has_checksum:
            return (
                f"{kept}, but the server names no version of the file (ETag or "
                f"Last-Modified): the next run resumes it only when given the file's "
                f"SHA-256 checksum, else it starts again."
            )
        return (
            f"{kept}; run the download again to resume from there (an unfinished "
            f"download left for {days:g} days is deleted)."
        )

    # -- partial file bookkeeping -------------------------------------------------

    def _note_state(self) -> tuple[bool, dict[str, str]]:
        """(whether the partial file's note is for this URL, its validators)."""
        try:
            note = json.loads(self.note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = None
        if not isinstance(note, dict) or note.get("url") != self.url:
            return False, {}
        return True, {k: v for k, v in note.items() if k in ("etag", "last_modified")}

    def _resume_state(self) -> tuple[int, dict[str, str]]:
        """(bytes already on disk, validators) of a partial file for this same URL."""
        if not self.partial.is_file():
            return 0, {}
        same_url, validators = self._note_state()
        if not same_url:
            self.discard_partial()
            return 0, {}
        if not validators and not self.has_checksum:
            # Nothing could tell a changed file on the server from the one begun:
            # appending to it might splice two versions unnoticed.
            self.discard_partial()
            return 0, {}
        return self.partial.stat().st_size, validators

    def _write_note(self, response: requests.Response) -> None:
        note = {"url": self.url}
        etag = response.headers.get("ETag")
        # A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
        if etag and not etag.startswith("W/"):
            note["etag"] = etag
        if response.headers.get("Last-Modified"):
            note["last_modified"] = response.headers["Last-Modified"]
        self.note.write_text(json.dumps(note), encoding="utf-8")

    def discard_partial(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.note.unlink(missing_ok=True)

    # -- HTTP -----------------------------------------------------------------------

    def _get(self, headers: dict[str, str]) -> requests.Response:
        """GET with redirects followed by hand, each hop checked by :func:`check_url`."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            self.requests += 1
            try:
                response = self.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=(self.options.connect_timeout, self.options.read_timeout),
                    proxies=self.proxies,
                )
            except requests.exceptions.InvalidSchema as error:  # e.g. socks5 proxy
                raise DownloadError(f"Cannot use the configured proxy: {error}") from error
            except requests.exceptions.SSLError as error:
                # Certificate problems do not go away by retrying.
                raise DownloadError(
                    f"The secure (TLS) connection to {urlsplit(url).hostname} failed: {error}"
                ) from error
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                raise _RetryableError(_describe_failure(error, urlsplit(url).hostname)) from error
            except requests.exceptions.RequestException as error:
                raise DownloadError(f"Download of {url} failed: {error}") from error
            if response.status_code not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise DownloadError(f"The server redirected {self.url} without a location.")
            url = check_url(urljoin(url, location), allow_http=self.options.allow_http)
        raise DownloadError(f"Too many redirects (over {MAX_REDIRECTS}) for {self.url}.")

    def _check_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (200, 206):
            return
        reason = f"HTTP {status} {response.reason or ''}".strip()
        response.close()
        if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
            raise _RetryableError(f"the server answered {reason}")
        hint = {
            401: " The server requires a login; this plugin downloads public files only.",
            403: " Access is forbidden; check the link or download the file in a browser.",
            404: " Check the URL or the catalogue entry.",
        }.get(status, "")
        raise DownloadError(f"Download of {self.url} failed: {reason}.{hint}")

    # -- one attempt --------------------------------------------------------------

    def attempt(self) -> None:
        """Fetch the remaining bytes into the partial file; raise on any failure."""
        offset, validators = self._resume_state()
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if_range = validators.get("etag") or validators.get("last_modified")
            if if_range:
                headers["If-Range"] = if_range
        response = self._in_background(lambda: self._get(headers))
        if response.status_code == 416 and offset:
            # The partial no longer fits what the server has: start again.
            response.close()
            self.discard_partial()
            raise _RetryableError("the server rejected the resume request; restarting")
        self._check_status(response)
        with response:
            offset, total = self._content_range(response, offset)
            self._check_total(total)
            if offset == 0:
                self._write_note(response)
            else:
                self.resumed = True
                self.progress.info(f"Resuming the download at {format_bytes(offset)}.")
            self.received = offset
            with open(self.partial, "ab" if offset else "wb") as stream:
                done = self._stream(response, stream, offset, total)
        if total is not None and done < total:
            raise _RetryableError(
                f"the connection closed after {format_bytes(done)} of {format_bytes(total)}"
            )

    def _content_range(self, response: requests.Response, offset: int) -> tuple[int, int | None]:
        """(offset the body starts at, total file size or ``None``) of a 200/206 answer."""
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if response.status_code == 200:
            # A full answer (the server ignored Range, or the file changed): restart.
            return 0, length
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            self.discard_partial()
            raise _RetryableError("the server sent an unexpected byte range; restarting")
        total = match.group(3)
        return offset, int(total) if total != "*" else None

    def _check_total(self, total: int | None) -> None:
        if total is None:
            return
        if total > self.options.max_bytes:
            self.discard_partial()
            raise DownloadError(
                f"The file at {self.url} is {format_bytes(total)}, above the "
                f"{format_bytes(self.options.max_bytes)} limit; nothing was downloaded."
            )
        if self.expected_size is not None and total != self.expected_size:
            self.discard_partial()
            raise ChecksumError(
                f"The server announces {total} bytes for {self.url}, but {self.expected_size} "
                f"bytes were expected; the file on the server is not the expected model."
            )

    def _stream(
        self, response: requests.Response, stream: BinaryIO, done: int, total: int | None
    ) -> int:
        """Append the body to ``stream`` as it arrives; return the bytes now in the
        partial file.

        A helper thread reads (:func:`_pump`); this thread writes every piece at once,
        reports progress and checks cancel and the time limit, also while no byte
        comes. The stall timeout is the socket's read timeout in the helper thread.
        """
        pieces: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED_PIECES)
        stop = threading.Event()
        reader = threading.Thread(
            target=_pump,
            args=(response, pieces, stop, self.options.chunk_size),
            name="landcover-download-body",
            daemon=True,
        )
        reader.start()
        ended = False
        try:
            while True:
                try:
                    item = pieces.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    self.check_limits()
                    continue
                if item is _END:
                    ended = True
                    return done
                if isinstance(item, BaseException) and _closed_early(item):
                    ended = True
                    return done  # the caller reports the missing bytes
                if isinstance(item, BaseException):
                    stream.flush()
                    raise _RetryableError(self._transfer_failure(item, done)) from item
                stream.write(item)
                done += len(item)
                self.received = done
                if done > self.options.max_bytes:
                    stream.close()
                    self.discard_partial()
                    raise DownloadError(
                        f"The download from {self.url} passed the "
                        f"{format_bytes(self.options.max_bytes)} limit and was stopped."
                    )
                if self.on_bytes is not None:
                    self.on_bytes(done, total)
                if total:
                    self.progress.set_progress(100.0 * done / total)
                self.check_limits()
        finally:
            stop.set()
            if not ended:  # wake the reader if it waits for bytes
                _shutdown_connection(response)
            reader.join(timeout=1.0)

    def _transfer_failure(self, error: BaseException, done: int) -> str:
        """Why the body stopped, for the retry log and the final error."""
        if isinstance(error, TimeoutError) or "timed out" in str(error).lower():
            return (
                f"the transfer timed out: no data for {self.options.read_timeout:g} s "
                f"(stall timeout) after {format_bytes(done)}"
            )
        return f"the transfer was interrupted after {format_bytes(done)} ({error})"


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    validate: Validator | None = None,
    options: DownloadOptions | None = None,
    proxies: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    on_bytes: ByteCallback | None = None,
    session: requests.Session | None = None,
) -> DownloadResult:
    """Download ``url`` to ``destination``, verified, atomically.

    Args:
        url: ``https://`` URL (see :func:`check_url` for ``http://``).
        destination: final file path; its folder must exist and be writable.
        sha256: expected SHA-256 (64 hex digits), or ``None`` to accept any content.
        size: expected size in bytes, or ``None``.
        validate: called with the complete temporary file before the rename; an
            exception rejects the file (the temporary file is then deleted).
        options: limits, timeouts and retry policy.
        proxies: ``requests`` proxies mapping (``{"https": "http://proxy:3128", ...}``);
            ``None`` uses the environment's proxy variables.
        progress: receives percent done and info lines; polled for cancel every
            :data:`POLL_SECONDS`.
        on_bytes: receives (bytes done, total bytes or ``None``) per piece read.
        session: a ``requests.Session`` to reuse (tests, connection pooling).

    Returns:
        The :class:`DownloadResult`.

    Raises:
        InputError: malformed or refused URL, malformed checksum, unwritable folder.
        DownloadError: HTTP 4xx, network failure after all retries, size limit, time
            limit.
        ChecksumError: the bytes do not match ``sha256`` or ``size``.
        CancelledError: ``progress`` asked to stop; the partial file is kept for resume.

    A failure that keeps the partial file says so in its message (the file and how to
    resume). Partial files in the destination's folder untouched for
    :data:`PART_MAX_AGE_SECONDS` are deleted first.
    """
    options = options or DownloadOptions()
    url = check_url(url, allow_http=options.allow_http)
    expected = normalize_sha256(sha256)
    target = Path(destination)
    _check_writable_folder(target.parent)
    expire_partial_downloads(target.parent if str(target.parent) else Path("."))
    progress = progress if progress is not None else NullProgress()
    owned_session = session is None
    http = session if session is not None else requests.Session()
    job = _Download(
        url,
        target,
        expected_size=size,
        has_checksum=expected is not None,
        options=options,
        session=http,
        proxies=proxies,
        progress=progress,
        on_bytes=on_bytes,
    )
    try:
        _run_attempts(job)
    except (DownloadError, CancelledError, KeyboardInterrupt) as error:
        note = job.kept_part_note()
        if note and isinstance(error, KeyboardInterrupt):
            error.add_note(note)
        elif note:
            error.args = (f"{error} {note}",)
        raise
    finally:
        if owned_session:
            http.close()
    return _finish(job, expected, validate)


def _run_attempts(job: _Download) -> None:
    """Call ``job.attempt`` until it succeeds, with exponential back-off between tries."""
    options = job.options
    for attempt in range(options.retries + 1):
        job.check_limits()
        try:
            job.attempt()
            return
        except _RetryableError as error:
            if attempt == options.retries:
                raise DownloadError(
                    f"Download of {job.url} failed after {attempt + 1} attempt(s): {error}. "
                    f"Check the network connection or proxy and try again."
                ) from error
            delay = options.backoff * 2**attempt
            job.progress.warning(
                f"Download {error}; retrying in {delay:g} s "
                f"(attempt {attempt + 2} of {options.retries + 1})."
            )
            _sleep(delay, job)


def _finish(job: _Download, expected: str | None, validate: Validator | None) -> DownloadResult:
    """Verify the complete partial file and rename it onto the destination."""
    actual_size = job.partial.stat().st_size
    actual = file_sha256(job.partial)
    if job.expected_size is not None and actual_size != job.expected_size:
        job.discard_partial()
        raise ChecksumError(
            f"The download of {job.url} has {actual_size} bytes instead of "
            f"{job.expected_size}; it was discarded."
        )
    if expected is not None and actual != expected:
        job.discard_partial()
        raise ChecksumError(
            f"SHA-256 mismatch for {job.url}: expected {expected}, got {actual}. "
            f"The file was discarded; it is corrupt or not the expected model."
        )
    try:
        if validate is not None:
            validate(job.partial)
        os.replace(job.partial, job.destination)
    except BaseException:
        job.discard_partial()
        raise
    job.note.unlink(missing_ok=True)
    return DownloadResult(job.destination, actual, actual_size, job.requests, job.resumed)


def _describe_failure(error: requests.exceptions.RequestException, host: str | None) -> str:
    """A short reason for a failed request, for the retry log and the final error."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"timed out connecting to {host}"
    if isinstance(error, requests.exceptions.Timeout):
        return f"timed out waiting for an answer from {host}"
    if isinstance(error, requests.exceptions.ProxyError):
        return f"the proxy refused or failed the connection to {host}"
    return f"cannot connect to {host}"


def _check_writable_folder(folder: Path) -> None:
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        raise InputError(f"The download folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InputError(f"The download folder is not writable: {folder}")


def _sleep(seconds: float, job: _Download) -> None:
    """Sleep, waking every :data:`POLL_SECONDS` to honour a cancel request and the
    time limit."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        job.check_limits()
        time.sleep(min(POLL_SECONDS, remaining))

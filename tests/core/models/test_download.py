# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_landcover.core.models.download`` against a real HTTP server on 127.0.0.1.

:class:`ModelServer` is also used by the catalogue and algorithm tests: it serves byte
strings with Range support and can misbehave on purpose (drop the connection half-way,
stall, trickle, answer 5xx once, corrupt the body, ignore Range, send no length).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.files.checksum import file_sha256, normalize_sha256
from qgis_landcover.core.models.download import (
    ChecksumError,
    DownloadError,
    DownloadOptions,
    check_url,
    download_file,
    is_loopback_host,
    partial_path,
)
from qgis_landcover.core.progress import NullProgress

# Fast retries and short timeouts: every test stays well under a second or two.
FAST = DownloadOptions(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.01)


@dataclass
class Served:
    """A file the server offers, and how it misbehaves."""

    body: bytes
    behaviour: str = "normal"
    status: int = 200
    location: str = ""
    etag: bool = True
    hits: int = 0
    interval: float = 0.05  # ``trickle``: seconds between bytes
    limit: int | None = None  # ``trickle``: bytes sent before closing (None: all)
    sent: int = 0  # ``trickle``: bytes sent so far
    sending: threading.Event = field(default_factory=threading.Event)  # first byte sent


@dataclass
class ModelServer:
    """A threaded HTTP server on 127.0.0.1 serving :class:`Served` files by path.

    Behaviours: ``normal`` (ETag, Accept-Ranges, 206 for Range), ``drop_once`` (the first
    answer announces the full length and closes half-way), ``stall`` (waits before
    answering), ``stall_body`` (sends half, then waits), ``fail_once`` (HTTP 503 first),
    ``corrupt`` (one byte flipped), ``ignore_range`` (always 200), ``no_length`` (no
    Content-Length), ``status`` (answers ``status``), ``redirect`` (to ``location``),
    ``trickle`` (announces the whole body, then sends one byte every ``interval``
    seconds, ``limit`` bytes at most, and closes).
    """

    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> ModelServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()  # wake stalled handlers
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, body: bytes = b"", **options: Any) -> str:
        """Serve ``body`` at ``path``; return its URL."""
        self.files[path] = Served(body, **options)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def hits(self, path: str) -> int:
        return self.files[path].hits


class _Handler(BaseHTTPRequestHandler):
    server_state: ModelServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        state = self.server_state
        state.requests.append((self.path, dict(self.headers.items())))
        served = state.files.get(self.path)
        if served is None:
            self.send_error(404, "Not Found")
            return
        served.hits += 1
        behaviour = served.behaviour
        if behaviour == "status" or (behaviour == "fail_once" and served.hits == 1):
            self.send_error(served.status if behaviour == "status" else 503)
            return
        if behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", served.location)
            self.end_headers()
            return
        if behaviour == "stall":
            state.stop.wait(5)
            return
        body = served.body
        if behaviour == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        start = 0
        range_header = self.headers.get("Range")
        if range_header and behaviour not in ("ignore_range", "no_length"):
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if behaviour != "no_length":
            self.send_header("Content-Length", str(len(body) - start))
        if served.etag:
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        payload = body[start:]
        if behaviour == "trickle":
            for byte in payload[: served.limit]:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:  # the client went away
                    return
                served.sent += 1
                served.sending.set()
                if state.stop.wait(served.interval):
                    return
            return
        if behaviour in ("drop_once", "stall_body") and served.hits == 1:
            payload = payload[: len(payload) // 2]
            self.wfile.write(payload)
            self.wfile.flush()
            if behaviour == "stall_body":
                state.stop.wait(5)
            return  # HTTP/1.0: returning closes the connection short of its length
        self.wfile.write(payload)


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    """Body of the ``server`` fixture; other test modules reuse it with
    ``server = pytest.fixture(serve, name="server")``."""
    # A proxy in the environment must not intercept requests to the local server.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with ModelServer() as running:
        yield running


server = pytest.fixture(serve, name="server")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BODY = os.urandom(300_000)


class CancelAfter(NullProgress):
    """Asks to cancel once ``limit`` bytes have arrived (via the byte callback)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.done = 0

    def on_bytes(self, done: int, total: int | None) -> None:
        self.done = done

    def is_cancelled(self) -> bool:
        return self.done >= self.limit


def test_download_writes_verified_file_and_reports_bytes(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    seen: list[tuple[int, int | None]] = []
    progress = NullProgress()
    result = download_file(
        url,
        tmp_path / "m.onnx",
        sha256=sha(BODY),
        size=len(BODY),
        options=FAST,
        progress=progress,
        on_bytes=lambda done, total: seen.append((done, total)),
    )
    assert (tmp_path / "m.onnx").read_bytes() == BODY
    assert result.sha256 == sha(BODY) and result.size == len(BODY)
    assert result.requests == 1 and not result.resumed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no .part left
    assert seen[-1] == (len(BODY), len(BODY))
    done = [0, *(count for count, _ in seen)]
    # One callback per read, as the bytes arrive: each read adds 1 to 64 KiB.
    assert all(0 < b - a <= FAST.chunk_size for a, b in itertools.pairwise(done))
    assert progress.percent == pytest.approx(100.0)
    assert server.requests[0][1]["Accept-Encoding"] == "identity"


def test_corrupted_body_is_a_checksum_error_and_leaves_nothing(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="corrupt")
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        download_file(url, tmp_path / "m.onnx", sha256=sha(BODY), options=FAST)
    assert list(tmp_path.iterdir()) == []


def test_wrong_announced_size_is_refused_before_downloading(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    with pytest.raises(ChecksumError, match=f"announces {len(BODY)} bytes"):
        download_file(url, tmp_path / "m.onnx", size=len(BODY) + 1, options=FAST)
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_a_clear_error_without_retry(server: ModelServer, tmp_path: Path):
    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found\. Check the URL") as caught:
        download_file(server.url("/nothing.onnx"), tmp_path / "m.onnx", options=FAST)
    assert "\n" not in str(caught.value)
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_http_5xx_is_retried(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="fail_once")
    progress = NullProgress()
    download_file(url, tmp_path / "m.onnx", sha256=sha(BODY), options=FAST, progress=progress)
    assert server.hits("/m.onnx") == 2
    assert "HTTP 503" in progress.warnings[0] and "retrying" in progress.warnings[0]


def part_sizes_at_requests(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[int]:
    """The bytes of ``*.part`` files in ``folder`` at the moment each HTTP request is
    sent (0 without one): what a resumed request's ``Range`` must start from."""
    sizes: list[int] = []
    send = requests.Session.request

    def request(self: requests.Session, *args: Any, **kwargs: Any) -> requests.Response:
        sizes.append(sum(part.stat().st_size for part in folder.glob("*.part")))
        return send(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return sizes


def test_dropped_connection_resumes_with_range_and_verifies(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = server.add("/m.onnx", BODY, behaviour="drop_once")
    saved = part_sizes_at_requests(monkeypatch, tmp_path)
    result = download_file(url, tmp_path / "m.onnx", sha256=sha(BODY), options=FAST)
    assert (tmp_path / "m.onnx").read_bytes() == BODY
    assert result.resumed
    (_, first), (_, second) = server.requests
    assert "Range" not in first
    # Resumed from exactly what was saved (of the half the server sent, how much the
    # HTTP client handed over before the drop depends on its version).
    assert len(saved) == 2 and saved[0] == 0 and 0 < saved[1] <= len(BODY) // 2
    assert second["Range"] == f"bytes={saved[1]}-"
    assert second["If-Range"].startswith('"')  # resume only if the file is unchanged


def test_server_ignoring_range_restarts_from_zero(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    target = tmp_path / "m.onnx"
    progress = CancelAfter(100_000)
    with pytest.raises(CancelledError):
        download_file(url, target, options=FAST, progress=progress, on_bytes=progress.on_bytes)
    server.files["/m.onnx"].behaviour = "ignore_range"
    result = download_file(url, target, sha256=sha(BODY), options=FAST)
    assert "Range" in server.requests[-1][1]  # asked to resume, got the whole file
    assert not result.resumed and target.read_bytes() == BODY


@pytest.mark.parametrize("checksum", [False, True])
def test_resume_needs_an_etag_or_a_checksum(server: ModelServer, tmp_path: Path, checksum: bool):
    url = server.add("/m.onnx", BODY, etag=False)
    target = tmp_path / "m.onnx"
    progress = CancelAfter(100_000)
    with pytest.raises(CancelledError):
        download_file(url, target, options=FAST, progress=progress, on_bytes=progress.on_bytes)
    result = download_file(url, target, sha256=sha(BODY) if checksum else None, options=FAST)
    assert ("Range" in server.requests[-1][1]) is checksum
    assert result.resumed is checksum and target.read_bytes() == BODY


def test_part_file_from_an_unknown_source_is_not_resumed(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    target = tmp_path / "m.onnx"
    partial_path(target).write_bytes(b"x" * 1000)  # no note of which URL it came from
    result = download_file(url, target, sha256=sha(BODY), options=FAST)
    assert "Range" not in server.requests[-1][1]
    assert not result.resumed and target.read_bytes() == BODY


def test_read_timeout_is_retried_then_reported(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="stall")
    options = DownloadOptions(read_timeout=0.3, retries=1, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"after 2 attempt.*timed out waiting"):
        download_file(url, tmp_path / "m.onnx", options=options)
    assert time.monotonic() - started < 3
    assert server.hits("/m.onnx") == 2
    assert not (tmp_path / "m.onnx").exists()


def test_timeout_mid_body_keeps_the_part_then_resumes(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="stall_body")
    target = tmp_path / "m.onnx"
    options = DownloadOptions(read_timeout=0.3, retries=0)
    with pytest.raises(DownloadError, match="timed out") as caught:
        download_file(url, target, options=options)
    assert not target.exists()
    # The bytes received before the stall are kept, and the message says where.
    kept = partial_path(target).stat().st_size
    assert 0 < kept <= len(BODY) // 2
    assert f"kept in {partial_path(target)}; run the download again to resume" in str(caught.value)
    result = download_file(url, target, sha256=sha(BODY), options=FAST)
    assert result.resumed and target.read_bytes() == BODY
    assert server.requests[-1][1]["Range"] == f"bytes={kept}-"


def test_too_large_announced_file_is_refused(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    options = DownloadOptions(max_bytes=100_000)
    with pytest.raises(DownloadError, match="above the 100000 bytes limit"):
        download_file(url, tmp_path / "m.onnx", options=options)
    assert list(tmp_path.iterdir()) == []


def test_too_large_stream_without_length_is_stopped(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="no_length")
    options = DownloadOptions(max_bytes=100_000)
    with pytest.raises(DownloadError, match="passed the 100000 bytes limit"):
        download_file(url, tmp_path / "m.onnx", options=options)
    assert list(tmp_path.iterdir()) == []


def test_cancel_mid_download_keeps_part_for_resume(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    target = tmp_path / "m.onnx"
    progress = CancelAfter(100_000)
    with pytest.raises(CancelledError):
        download_file(url, target, options=FAST, progress=progress, on_bytes=progress.on_bytes)
    assert not target.exists()
    kept = partial_path(target).stat().st_size
    assert 100_000 <= kept < len(BODY)
    result = download_file(url, target, sha256=sha(BODY), options=FAST)
    assert result.resumed and target.read_bytes() == BODY
    assert server.requests[-1][1]["Range"] == f"bytes={kept}-"


class CancelOnRequest(NullProgress):
    """Cancels once :meth:`cancel` was called (from another thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.requested = threading.Event()
        self.at = 0.0

    def cancel(self) -> None:
        self.at = time.monotonic()
        self.requested.set()

    def is_cancelled(self) -> bool:
        return self.requested.is_set()


@pytest.mark.parametrize("behaviour", ["trickle", "stall"])
def test_cancel_is_honoured_while_the_server_trickles_or_is_silent(
    server: ModelServer, tmp_path: Path, behaviour: str
):
    # 100 bytes at 0.05 s, or no answer for 5 s: without a check while waiting for
    # bytes, the cancel would be seen seconds later (or after 64 KiB: never).
    url = server.add("/m.onnx", BODY, behaviour=behaviour, limit=100)
    progress = CancelOnRequest()

    def cancel_soon() -> None:
        if behaviour == "trickle":
            server.files["/m.onnx"].sending.wait(10)
        else:
            while not server.requests:
                time.sleep(0.01)
        progress.cancel()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    with pytest.raises(CancelledError, match="Cancelled") as caught:
        download_file(url, tmp_path / "m.onnx", options=FAST, progress=progress)
    waited = time.monotonic() - progress.at
    canceller.join()
    assert waited < 1.0
    assert server.hits("/m.onnx") == 1  # not retried
    if behaviour == "trickle":
        kept = partial_path(tmp_path / "m.onnx").stat().st_size
        assert 0 < kept < 100
        assert f"{kept} bytes received so far are kept in {partial_path(tmp_path / 'm.onnx')}" in (
            str(caught.value)
        )


def test_stall_timeout_fires_when_bytes_come_too_slowly(server: ModelServer, tmp_path: Path):
    # One byte a second with a 0.3 s stall timeout: the first gap is a stall.
    url = server.add("/m.onnx", BODY, behaviour="trickle", interval=1.0)
    options = DownloadOptions(read_timeout=0.3, retries=0)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 0\.3 s \(stall timeout\) after 1 bytes"):
        download_file(url, tmp_path / "m.onnx", options=options)
    assert 0.3 <= time.monotonic() - started < 3


def test_time_limit_stops_a_trickling_server(server: ModelServer, tmp_path: Path):
    # Never silent for the stall timeout, yet 300 kB at 20 bytes/s would take hours.
    url = server.add("/m.onnx", BODY, behaviour="trickle")
    target = tmp_path / "m.onnx"
    options = DownloadOptions(read_timeout=2.0, time_limit=0.5, retries=3, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"within the time limit of 0\.5 s") as caught:
        download_file(url, target, options=options)
    assert 0.5 <= time.monotonic() - started < 2.5
    assert server.hits("/m.onnx") == 1  # the time limit is not retried
    assert "run the download again to resume from there" in str(caught.value)
    kept = partial_path(target).stat().st_size
    assert f"The {kept} bytes received so far" in str(caught.value) and kept > 0


def test_truncated_body_names_the_kept_part(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY, behaviour="trickle", interval=0.0, limit=1000)
    target = tmp_path / "m.onnx"
    with pytest.raises(DownloadError, match="closed after 1000 bytes of 300000 bytes") as caught:
        download_file(url, target, options=DownloadOptions(retries=0))
    assert partial_path(target).stat().st_size == 1000
    assert str(caught.value).endswith(
        f"The 1000 bytes received so far are kept in {partial_path(target)}; run the "
        "download again to resume from there (an unfinished download left for 7 days "
        "is deleted)."
    )


def test_stale_parts_are_deleted_by_the_next_download(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)
    week = 7 * 24 * 3600
    stale = {"old.onnx.part": b"x" * 10, "old.onnx.part.json": b'{"url": "https://a/b"}'}
    recent = {"new.onnx.part": b"x" * 10, "new.onnx.part.json": b'{"url": "https://a/c"}'}
    foreign = {"browser.zip.part": b"x"}  # not ours: no note
    for name, content in {**stale, **recent, **foreign}.items():
        (tmp_path / name).write_bytes(content)
    old = time.time() - week - 60
    for name in (*stale, *foreign):
        os.utime(tmp_path / name, (old, old))
    download_file(url, tmp_path / "m.onnx", sha256=sha(BODY), options=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", *recent, *foreign])


def test_validator_rejection_leaves_nothing(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", BODY)

    def reject(path: Path) -> None:
        assert path.read_bytes() == BODY  # the validator sees the complete file
        raise InputError("not a model")

    with pytest.raises(InputError, match="not a model"):
        download_file(url, tmp_path / "m.onnx", validate=reject, options=FAST)
    assert list(tmp_path.iterdir()) == []


def test_plain_http_to_other_hosts_is_refused_before_any_traffic(tmp_path: Path):
    class NoNetwork(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no request may be sent")

    with pytest.raises(InputError, match=r"Refusing plain http:// download from example\.com"):
        download_file("http://example.com/m.onnx", tmp_path / "m", session=NoNetwork())
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_plain_http_elsewhere_is_refused(server: ModelServer, tmp_path: Path):
    url = server.add("/m.onnx", behaviour="redirect", location="http://example.com/m.onnx")
    with pytest.raises(InputError, match="Refusing plain http://"):
        download_file(url, tmp_path / "m.onnx", options=FAST)
    assert len(server.requests) == 1


def test_redirect_on_the_same_server_is_followed(server: ModelServer, tmp_path: Path):
    server.add("/real.onnx", BODY)
    url = server.add("/m.onnx", behaviour="redirect", location="/real.onnx")
    result = download_file(url, tmp_path / "m.onnx", sha256=sha(BODY), options=FAST)
    assert result.requests == 2


@pytest.mark.parametrize("source", ["argument", "environment"])
def test_proxy_from_argument_or_environment_is_used(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The host is never resolved: the proxy receives the absolute URL and answers.
    target = "http://models.example/m.onnx"
    with ModelServer() as proxy:
        proxy.add(target, BODY)
        proxies = {"http": proxy.url("")} if source == "argument" else None
        if source == "environment":
            monkeypatch.setenv("HTTP_PROXY", proxy.url(""))
        options = DownloadOptions(allow_http=True, retries=0)
        download_file(
            target, tmp_path / "m.onnx", sha256=sha(BODY), options=options, proxies=proxies
        )
        assert [path for path, _ in proxy.requests] == [target]


def test_connection_refused_is_reported_after_retries(tmp_path: Path):
    with ModelServer() as stopped:
        url = stopped.url("/m.onnx")
    with pytest.raises(DownloadError, match=r"after 3 attempt.*cannot connect to 127\.0\.0\.1"):
        download_file(url, tmp_path / "m.onnx", options=FAST)


@pytest.mark.parametrize(
    ("url", "allow_http", "accepted"),
    [
        ("https://example.com/m.onnx", False, True),
        ("http://127.0.0.1:8000/m.onnx", False, True),
        ("http://[::1]/m.onnx", False, True),
        ("http://localhost/m.onnx", False, True),
        ("http://example.com/m.onnx", False, False),
        ("http://example.com/m.onnx", True, True),
        ("http://127.0.0.1.example.com/m.onnx", False, False),
        ("http://127.1.2.3/m.onnx", False, True),
        ("http://evil.localhost/m.onnx", False, False),
        ("http://localhost.example.com/m.onnx", False, False),
        ("http://localhost./m.onnx", False, False),
        ("http://[::2]/m.onnx", False, False),
        ("ftp://example.com/m.onnx", False, False),
        ("https:///m.onnx", False, False),
        ("https:/example.com/m.onnx", False, False),
        ("https://exa mple.com/m.onnx", False, False),
        ("https://example.com:99999/m.onnx", False, False),
    ],
)
def test_check_url(url: str, allow_http: bool, accepted: bool) -> None:
    if accepted:
        assert check_url(url, allow_http=allow_http) == url
    else:
        with pytest.raises(InputError, match=r"URL|http://") as caught:
            check_url(url, allow_http=allow_http)
        assert "\n" not in str(caught.value)


def test_is_loopback_host_never_resolves_names() -> None:
    assert is_loopback_host("127.0.0.2") and is_loopback_host("::1")
    assert is_loopback_host("localhost") and is_loopback_host("LOCALHOST")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("localhost.example.com")
    # Names under .localhost are resolved through DNS like any other name.
    assert not is_loopback_host("evil.localhost") and not is_loopback_host("a.b.localhost")


def test_plain_http_to_a_localhost_subdomain_is_refused_before_any_traffic(tmp_path: Path):
    class NoNetwork(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no request may be sent")

    with pytest.raises(InputError, match=r"Refusing plain http:// download from evil\.localhost"):
        download_file("http://evil.localhost/m.onnx", tmp_path / "m", session=NoNetwork())


def test_normalize_sha256() -> None:
    digest = sha(b"abc")
    assert normalize_sha256(digest.upper()) == digest
    assert normalize_sha256(f" sha256:{digest} ") == digest
    assert normalize_sha256("") is None and normalize_sha256(None) is None
    with pytest.raises(InputError, match=r"64 hexadecimal characters.*\(63 characters\)"):
        normalize_sha256(digest[:-1])
    with pytest.raises(InputError, match="64 hexadecimal"):
        normalize_sha256("z" * 64)


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(BODY)
    assert file_sha256(path, chunk_size=1000) == hashlib.sha256(BODY).hexdigest()


def test_missing_download_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        download_file("https://example.com/m.onnx", tmp_path / "no" / "m.onnx")

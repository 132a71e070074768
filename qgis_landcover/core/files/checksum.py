# SPDX-License-Identifier: GPL-2.0-or-later
"""SHA-256 checksums of files: computing one, and reading one that a person or a
catalogue wrote (``sha256:`` prefix, upper case). No network code: loading a model
verifies its file without importing the HTTP client.
"""

from __future__ import annotations

import hashlib
import os
import re

from ..errors import InputError

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def normalize_sha256(value: str | None) -> str | None:
    """``value`` as 64 lowercase hex digits (an optional ``sha256:`` prefix is dropped),
    ``None`` for an empty value; :class:`InputError` for anything else."""
    if value is None:
        return None
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :].strip()
    if not text:
        return None
    if not SHA256_PATTERN.match(text):
        raise InputError(
            f"A SHA-256 checksum is 64 hexadecimal characters (0-9, a-f); "
            f"got {value.strip()!r} ({len(text)} characters)."
        )
    return text


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 4 * 1024 * 1024) -> str:
    """Lowercase hexadecimal SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()

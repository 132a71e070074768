# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the plugin zip that QGIS's "Install from ZIP" accepts.

The zip's top folder is ``qgis_landcover/``; ``metadata.txt`` (a link to the repository
root's file in the working tree) and ``LICENSE`` are written into it as real files.
Caches, compiled files and anything test-only stay out.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "qgis_landcover"
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def plugin_files() -> list[tuple[Path, str]]:
    """(source file, name inside the zip) pairs, sorted for a reproducible zip."""
    files: list[tuple[Path, str]] = []
    for directory, dirnames, filenames in os.walk(PLUGIN):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for filename in sorted(filenames):
            source = Path(directory) / filename
            if source.suffix in EXCLUDED_SUFFIXES or filename == "metadata.txt":
                continue
            files.append((source, f"qgis_landcover/{source.relative_to(PLUGIN).as_posix()}"))
    files.append((ROOT / "metadata.txt", "qgis_landcover/metadata.txt"))
    files.append((ROOT / "LICENSE", "qgis_landcover/LICENSE"))
    return files


def build(output: Path) -> Path:
    """Write the zip to ``output`` atomically (temporary file beside it, then rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for source, name in plugin_files():
                archive.write(source.resolve(), name)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="zip file to write")
    args = parser.parse_args()
    path = build(args.output)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

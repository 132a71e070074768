# SPDX-License-Identifier: GPL-2.0-or-later
"""Fast reads of GeoTIFF bands packed below one byte per pixel (``NBITS`` 1, 2 or 4).

Land-cover rasters with few classes are often stored with 4 bits per pixel (the
Chesapeake Conservancy tiles, for one). GDAL 3.6 unpacks such blocks pixel by pixel,
at about 100 megapixels per second and core, which makes reading, not counting, the
cost of an agreement. For uncompressed and DEFLATE files this module reads each
block's bytes itself, inflates them with ``zlib`` (which releases the GIL) and unpacks
all pixels with one lookup-table gather: several times faster.

Only the plain layouts are handled; anything else (other compressions, a predictor,
pixel interleaving, remote files) is left to GDAL. The largest block is also decoded
by GDAL when the reader is opened, and any difference disables the fast path.
"""

from __future__ import annotations

import math
import os
import zlib

import numpy as np
from osgeo import gdal

from .grid import Window

gdal.UseExceptions()

_COMPRESSIONS = {None, "NONE", "DEFLATE"}
SMALL_BLOCK_BYTES = 4096
"""Compressed blocks up to this size are remembered by content (see ``_block``)."""
RECENT_BLOCKS = 32
"""How many such blocks are remembered (each a block of pixels, e.g. 256 KiB)."""


def _unpack_table(bits: int) -> np.ndarray:
    """For each byte value, the ``8 // bits`` pixels packed in it (first pixel in the
    high bits, TIFF fill order 1), as one unsigned integer of ``8 // bits`` bytes, so
    that ``np.take(table, packed).view(np.uint8)`` unpacks an array in one gather."""
    per_byte = 8 // bits
    shifts = np.arange(per_byte - 1, -1, -1) * bits
    byte = np.arange(256, dtype=np.uint16)[:, None]
    pixels = ((byte >> shifts) & ((1 << bits) - 1)).astype(np.uint8)  # (256, per_byte)
    return np.ascontiguousarray(pixels).view(np.dtype(f"u{per_byte}")).ravel()


class PackedTiffBand:
    """Reads windows of one NBITS 1/2/4 band of a local GeoTIFF without GDAL's
    per-pixel unpacking. Use :meth:`open`, which returns ``None`` when the file's
    layout is not one this reader handles."""

    def __init__(self, path: str, band: gdal.Band, bits: int, compressed: bool) -> None:
        self.path = path
        self.band = band
        self.bits = bits
        self.compressed = compressed
        self.block_width, self.block_height = band.GetBlockSize()
        self.width, self.height = band.XSize, band.YSize
        self.row_bytes = math.ceil(self.block_width * bits / 8)
        nodata = band.GetNoDataValue()
        self.fill = int(nodata) if nodata is not None and 0 <= nodata < 256 else 0
        self._table = _unpack_table(bits)
        self._blocks_x = math.ceil(self.width / self.block_width)
        self._blocks_y = math.ceil(self.height / self.block_height)
        self._locations: dict[tuple[int, int], tuple[int, int]] = {}
        self._recent: dict[bytes, np.ndarray] = {}
        # One reader serves one thread at a time (see read_ahead.read_windows_ahead), so a
        # plain file with seek + read is safe (os.pread does not exist on Windows).
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in __del__

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()

    @classmethod
    def open(cls, path: str, dataset: gdal.Dataset, band_number: int) -> PackedTiffBand | None:
        """A reader for band ``band_number`` of ``dataset`` (opened from ``path``), or
        ``None`` when GDAL should read it (not a packed plain GeoTIFF band, or the
        fast decoding of its largest block differs from GDAL's)."""
        band = dataset.GetRasterBand(band_number)
        driver = dataset.GetDriver()
        if driver is None or driver.ShortName != "GTiff" or band.DataType != gdal.GDT_Byte:
            return None
        bits = band.GetMetadataItem("NBITS", "IMAGE_STRUCTURE")
        structure = dataset.GetMetadata("IMAGE_STRUCTURE") or {}
        if bits not in ("1", "2", "4") or not os.path.isfile(path):
            return None
        if structure.get("COMPRESSION") not in _COMPRESSIONS:
            return None
        if structure.get("PREDICTOR", "1") != "1":
            return None
        if dataset.RasterCount > 1 and structure.get("INTERLEAVE", "PIXEL") != "BAND":
            return None
        reader = cls(path, band, int(bits), structure.get("COMPRESSION") == "DEFLATE")
        return reader if reader._agrees_with_gdal() else None

    def _location(self, x: int, y: int) -> tuple[int, int]:
        """(file offset, byte count) of block (x, y); (0, 0) for a sparse block."""
        location = self._locations.get((x, y))
        if location is None:
            offset = self.band.GetMetadataItem(f"BLOCK_OFFSET_{x}_{y}", "TIFF")
            size = self.band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF")
            location = self._locations[(x, y)] = (int(offset or 0), int(size or 0))
        return location

    def _agrees_with_gdal(self) -> bool:
        """Decode the largest of up to 64 evenly spread blocks both ways and compare."""
        count = self._blocks_x * self._blocks_y
        spread = {int(i) for i in np.linspace(0, count - 1, min(count, 64))}
        blocks = [(i % self._blocks_x, i // self._blocks_x) for i in sorted(spread)]
        size, x, y = max((self._location(x, y)[1], x, y) for x, y in blocks)
        if size == 0:
            return False  # no block locations (or only sparse blocks): GDAL reads it
        try:
            mine = self._block(x, y)
            theirs = np.frombuffer(self.band.ReadBlock(x, y), dtype=np.uint8)
        except (OSError, RuntimeError, zlib.error, ValueError):
            return False
        finally:
            self.band.FlushCache()
        return theirs.size == mine.size and np.array_equal(theirs.reshape(mine.shape), mine)

    def _block(self, x: int, y: int) -> np.ndarray:
        """Block (x, y) unpacked, shape (block height, block width), read-only when
        remembered; a uniform block is a broadcast constant (strides 0, no memory)."""
        offset, size = self._location(x, y)
        if size == 0:
            return self._constant(self.fill)  # sparse block
        self._file.seek(offset)
        data = self._file.read(size)
        # Blocks that compress this well are (nearly) uniform and recur, e.g. the nodata
        # outside a map's coverage: equal bytes decode to equal pixels, decode them once.
        recurring = size <= SMALL_BLOCK_BYTES
        if recurring and data in self._recent:
            return self._recent[data]
        pixels = self._decode(zlib.decompress(data) if self.compressed else data)
        if recurring:
            if pixels.min() == pixels.max():
                pixels = self._constant(int(pixels[0, 0]))
            pixels.setflags(write=False)  # shared between windows
            self._recent[data] = pixels
            if len(self._recent) > RECENT_BLOCKS:
                del self._recent[next(iter(self._recent))]  # the oldest
        return pixels

    def _constant(self, value: int) -> np.ndarray:
        return np.broadcast_to(np.uint8(value), (self.block_height, self.block_width))

    def _decode(self, data: bytes) -> np.ndarray:
        """Unpack one block's decompressed bytes to (block height, block width) pixels."""
        packed = np.frombuffer(data, dtype=np.uint8)
        # The last strip of a striped file may hold fewer rows.
        rows = min(self.block_height, packed.size // self.row_bytes)
        packed = packed[: rows * self.row_bytes].reshape(rows, self.row_bytes)
        pixels = (
            np.take(self._table, packed).view(np.uint8).reshape(rows, -1)[:, : self.block_width]
        )
        if rows < self.block_height:
            pixels = np.vstack(
                [pixels, np.full((self.block_height - rows, self.block_width), self.fill, np.uint8)]
            )
        return pixels

    def read(self, window: Window) -> np.ndarray:
        """The pixels of ``window``, uint8, shape (rows, cols).

        A window of one value throughout (e.g. all nodata) comes back as a read-only
        broadcast constant: no memory, and callers can test ``strides == (0, 0)``.
        """
        bw, bh = self.block_width, self.block_height
        row_stop, col_stop = window.row_off + window.height, window.col_off + window.width
        blocks = [
            (x, y, self._block(x, y))
            for y in range(window.row_off // bh, (row_stop - 1) // bh + 1)
            for x in range(window.col_off // bw, (col_stop - 1) // bw + 1)
        ]
        first = blocks[0][2]
        if all(b.strides == (0, 0) and b[0, 0] == first[0, 0] for _, _, b in blocks):
            return np.broadcast_to(first[0, 0], window.shape)
        out = np.empty(window.shape, dtype=np.uint8)
        for x, y, block in blocks:
            top, left = max(window.row_off, y * bh), max(window.col_off, x * bw)
            bottom, right = min(row_stop, (y + 1) * bh), min(col_stop, (x + 1) * bw)
            out[
                top - window.row_off : bottom - window.row_off,
                left - window.col_off : right - window.col_off,
            ] = block[top - y * bh : bottom - y * bh, left - x * bw : right - x * bw]
        return out

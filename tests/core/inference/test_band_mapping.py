# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.band_mapping import BandInfo, canonical_name, map_bands
from qgis_landcover.core.progress import NullProgress

NAIP = [BandInfo(1, "", "red"), BandInfo(2, "", "green"), BandInfo(3, "", "blue"), BandInfo(4)]
MODEL = ["red", "green", "blue", "nir"]


def test_naip_colour_interpretation_maps_nir_to_the_remaining_band() -> None:
    progress = NullProgress()
    assert map_bands(MODEL, NAIP, progress=progress) == [1, 2, 3, 4]
    assert any("nir <- band 4" in m for m in progress.messages)


def test_names_beat_positions() -> None:
    layer = [
        BandInfo(1, "Near-Infrared"),
        BandInfo(2, "Blue"),
        BandInfo(3, "green"),
        BandInfo(4, "RED"),
    ]
    progress = NullProgress()
    assert map_bands(MODEL, layer, progress=progress) == [4, 3, 2, 1]
    assert not progress.messages  # nothing taken by position
    assert map_bands(["nir", "red"], layer) == [1, 4]


def test_alpha_bands_never_feed_the_model() -> None:
    layer = [*NAIP[:3], BandInfo(4, "", "alpha"), BandInfo(5)]
    assert map_bands(MODEL, layer) == [1, 2, 3, 5]


def test_unnamed_bands_are_taken_in_order() -> None:
    layer = [BandInfo(n) for n in range(1, 6)]
    assert map_bands(MODEL, layer) == [1, 2, 3, 4]


def test_explicit_bands_are_used_as_given() -> None:
    assert map_bands(MODEL, NAIP, [4, 3, 2, 1]) == [4, 3, 2, 1]


def test_too_few_bands_names_them() -> None:
    rgb_alpha = [*NAIP[:3], BandInfo(4, "", "alpha")]
    with pytest.raises(InputError, match=r"needs 4 bands \(red, green, blue, nir\).*3 usable"):
        map_bands(MODEL, rgb_alpha)
    with pytest.raises(InputError, match=r"needs 4 bands.*2 were chosen"):
        map_bands(MODEL, NAIP, [1, 2])
    with pytest.raises(InputError, match=r"Band 7 does not exist.*4 band"):
        map_bands(MODEL, NAIP, [1, 2, 3, 7])


def test_aliases() -> None:
    assert canonical_name("Near Infrared") == "nir"
    assert canonical_name("R") == "red"
    assert canonical_name("Coastal aerosol") == "coastalaerosol"


def test_identified_bands_do_not_stand_in_for_others() -> None:
    assert map_bands(["nir", "red"], NAIP) == [4, 1]
    # A Deepness model (generic names) on NAIP: too few anonymous bands, so the bands
    # go in order with a warning.
    progress = NullProgress()
    assert map_bands(["band1", "band2", "band3"], NAIP, progress=progress) == [1, 2, 3]
    assert progress.warnings

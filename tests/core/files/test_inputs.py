# SPDX-License-Identifier: GPL-2.0-or-later
"""The files an input reads (VRT sources, layer URIs, sidecars) and the refusal of
outputs among them (:mod:`qgis_landcover.core.files.inputs`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from qgis_landcover.core.errors import InputError, OverwriteError
from qgis_landcover.core.files.inputs import Input, Output, check_outputs, files_read, local_file
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource

from ...conftest import DATA
from ...onnx_models import contract_for, pointwise_model

LABELS = DATA / "chesapeake_lowres_tile" / "m_3907833_nw_17_1_lc.tif"
NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"


@pytest.fixture
def no_gdal_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve VRTs from their XML alone, so GDAL's own listing can be the oracle."""
    monkeypatch.setattr("qgis_landcover.core.files.inputs._gdal_file_list", lambda source, path: [])


def tiff(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    gdal.Translate(str(path), str(LABELS))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def gdal_closure(source: str) -> set[str]:
    """Every file GDAL itself lists for ``source``, following nested VRTs (the oracle)."""
    seen: set[str] = set()
    pending = [source]
    while pending:
        dataset = gdal.Open(pending.pop())
        for name in dataset.GetFileList():
            real = os.path.realpath(name)
            if real not in seen:
                seen.add(real)
                if real.endswith(".vrt"):
                    pending.append(name)
    return seen


def real_paths(source: str) -> set[str]:
    return {os.path.realpath(f.path) for f in files_read(source)}


def test_nested_vrt_sources_match_gdal(
    tmp_path: Path, no_gdal_listing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = tiff(tmp_path / "tiles" / "a.tif")
    absolute = tiff(tmp_path / "elsewhere" / "b.tif")
    monkeypatch.chdir(tmp_path)
    # relativeToVRT="1" (relative names) inside, an absolute source beside it outside.
    gdal.BuildVRT("tiles/inner.vrt", ["tiles/a.tif"])
    gdal.BuildVRT("outer.vrt", ["tiles/inner.vrt", str(absolute)])
    assert 'relativeToVRT="1">tiles/inner.vrt' in Path("outer.vrt").read_text()
    found = real_paths(str(tmp_path / "outer.vrt"))
    expected = gdal_closure(str(tmp_path / "outer.vrt"))
    assert expected == {
        os.path.realpath(p)
        for p in (tmp_path / "outer.vrt", tmp_path / "tiles/inner.vrt", leaf, absolute)
    }
    assert expected <= found
    relations = {f.path: f.relation for f in files_read(tmp_path / "outer.vrt")}
    assert relations[leaf] == f"a source of {tmp_path / 'tiles' / 'inner.vrt'}"


def test_symlinked_vrt_resolves_relative_sources_from_its_target(
    tmp_path: Path, no_gdal_listing: None
) -> None:
    real = tmp_path / "real"
    tiff(real / "a.tif")
    gdal.BuildVRT(str(real / "m.vrt"), [str(real / "a.tif")])
    assert 'relativeToVRT="1">a.tif' in (real / "m.vrt").read_text()
    link_folder = tmp_path / "links"
    link_folder.mkdir()
    (link_folder / "m.vrt").symlink_to(real / "m.vrt")
    tiff(link_folder / "a.tif")  # a decoy: GDAL reads real/a.tif, not this one
    expected = gdal_closure(str(link_folder / "m.vrt"))
    assert os.path.realpath(real / "a.tif") in expected
    assert os.path.realpath(link_folder / "a.tif") not in expected
    assert expected <= real_paths(str(link_folder / "m.vrt"))
    with pytest.raises(OverwriteError, match="a source of"):
        check_outputs([Input("INPUT", link_folder / "m.vrt")], [Output("OUTPUT", real / "a.tif")])
    check_outputs(
        [Input("INPUT", link_folder / "m.vrt")], [Output("OUTPUT", link_folder / "a.tif")]
    )


def test_warped_vrt_source_dataset(tmp_path: Path, no_gdal_listing: None) -> None:
    source = tiff(tmp_path / "a.tif")
    gdal.Warp(str(tmp_path / "w.vrt"), str(source), format="VRT", dstSRS="EPSG:4326")
    assert "<SourceDataset" in (tmp_path / "w.vrt").read_text()
    assert os.path.realpath(source) in real_paths(str(tmp_path / "w.vrt"))


def test_vrt_cycle_ends(tmp_path: Path) -> None:
    cell = '<VRTDataset rasterXSize="1" rasterYSize="1"><VRTRasterBand dataType="Byte" band="1">'
    for name, other in (("a.vrt", "b.vrt"), ("b.vrt", "a.vrt")):
        (tmp_path / name).write_text(
            f'{cell}<SimpleSource><SourceFilename relativeToVRT="1">{other}</SourceFilename>'
            "</SimpleSource></VRTRasterBand></VRTDataset>"
        )
    assert {tmp_path / "a.vrt", tmp_path / "b.vrt"} <= {
        f.path for f in files_read(tmp_path / "a.vrt")
    }


def test_symlink_and_dotdot_and_hard_link(tmp_path: Path) -> None:
    source = tiff(tmp_path / "data" / "a.tif")
    (tmp_path / "link.tif").symlink_to(source)
    (tmp_path / "other").mkdir()
    for given, output in (
        (source, tmp_path / "other" / ".." / "data" / "a.tif"),
        (tmp_path / "link.tif", source),  # the input through a symlink, the output its target
        (source, tmp_path / "link.tif"),  # the output a symlink to the input
    ):
        with pytest.raises(OverwriteError, match=r"a\.tif"):
            check_outputs([Input("INPUT", given)], [Output("OUTPUT", output)])
    # A sidecar that does not exist yet, named through a symlinked folder.
    (tmp_path / "folder_link").symlink_to(tmp_path / "data")
    with pytest.raises(OverwriteError, match=r"a\.qml, written beside .*the QGIS style of"):
        check_outputs(
            [Input("INPUT", tmp_path / "folder_link" / "a.tif")],
            [Output("OUTPUT", tmp_path / "data" / "a.tiff", raster=True)],
        )
    os.link(source, tmp_path / "hard.tif")
    with pytest.raises(OverwriteError, match=r"hard\.tif .*the same file as .*a\.tif"):
        check_outputs([Input("INPUT", source)], [Output("OUTPUT", tmp_path / "hard.tif")])


def test_sidecars_of_inputs_and_of_raster_outputs(tmp_path: Path) -> None:
    source = tiff(tmp_path / "a.tif")
    inputs = [Input("INPUT", source)]
    for output, match in (
        (Output("OUTPUT", tmp_path / "a.tif.aux.xml"), "metadata / statistics file of"),
        (Output("OUTPUT", tmp_path / "a.tif.ovr"), "overviews of"),
        (Output("OUTPUT", tmp_path / "a.qml"), "QGIS style of"),
        # a GeoTIFF output a.tiff writes a.qml beside it: the input's style
        (Output("OUTPUT", tmp_path / "a.tiff", raster=True), r"a\.qml, written beside .*a\.tiff"),
    ):
        with pytest.raises(OverwriteError, match=match):
            check_outputs(inputs, [output])
    check_outputs(inputs, [Output("OUTPUT", tmp_path / "b.tif", raster=True)])
    check_outputs(inputs, [Output("OUTPUT", tmp_path / "a.tiff")])  # no sidecars: allowed


def test_shapefile_and_geopackage_parts(tmp_path: Path) -> None:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    for driver, name in (("ESRI Shapefile", "pts.shp"), ("GPKG", "pts.gpkg")):
        source = ogr.GetDriverByName(driver).CreateDataSource(str(tmp_path / name))
        source.CreateLayer("pts", srs, ogr.wkbPoint)
        source = None
    shapefile = tmp_path / "pts.shp"
    for part in (".dbf", ".shx", ".prj", ".cpg"):
        with pytest.raises(OverwriteError, match="a part of the shapefile"):
            check_outputs(
                [Input("POINTS", shapefile)], [Output("OUT", shapefile.with_suffix(part))]
            )
    uri = f"{tmp_path / 'pts.gpkg'}|layername=pts"
    for name in ("pts.gpkg", "pts.gpkg-wal", "pts.gpkg-shm"):
        with pytest.raises(OverwriteError, match=r"POINTS reads"):
            check_outputs([Input("POINTS", uri)], [Output("OUT", tmp_path / name)])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{d}/p.gpkg|layername=points", "{d}/p.gpkg"),
        ("GPKG:{d}/p.gpkg:table", "{d}/p.gpkg"),
        ("GPKG:{d}/dir:with:colons/q.gpkg:table", "{d}/dir:with:colons/q.gpkg"),
        ('NETCDF:"{d}/a b.nc":var', "{d}/a b.nc"),
        ("GTIFF_DIR:2:{d}/p.gpkg", "{d}/p.gpkg"),
        ("/vsizip/{d}/a.zip/inner/x.tif", "{d}/a.zip"),
        ("/vsizip/{{{d}/a.zip}}/x.tif", "{d}/a.zip"),
        ("/vsisubfile/10_20,{d}/a.zip", "{d}/a.zip"),
        ("vrt://{d}/m.vrt?bands=1", "{d}/m.vrt"),
        ("file://{d}/a%20b.csv?delimiter=,", "{d}/a b.csv"),
        ("{d}/sub/../p.gpkg", "{d}/p.gpkg"),
        ("/vsicurl/https://example.com/a.tif", None),
        ("/vsimem/a.tif", None),
        ("https://example.com/a.tif", None),
        ("PG:dbname=x", None),
        ('<VRTDataset rasterXSize="1"/>', None),
    ],
)
def test_local_file_of_uris_and_connection_strings(
    tmp_path: Path, source: str, expected: str | None
) -> None:
    for name in ("p.gpkg", "a.zip", "a b.nc", "dir:with:colons/q.gpkg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    result = local_file(source.format(d=tmp_path))
    assert result == (None if expected is None else Path(expected.format(d=tmp_path)))


def test_outputs_must_not_overwrite_each_other(tmp_path: Path) -> None:
    with pytest.raises(OverwriteError, match="would both write"):
        check_outputs([], [Output("A", tmp_path / "x.json"), Output("B", tmp_path / "x.json")])
    with pytest.raises(OverwriteError, match=r"would both write .*x\.qml"):
        check_outputs(
            [],
            [Output("RASTER", tmp_path / "x.tif", raster=True), Output("HTML", tmp_path / "x.qml")],
        )
    check_outputs(
        [Input("missing", tmp_path / "nothing.tif"), Input("none", None)],
        [Output("A", tmp_path / "a.json"), Output("B", None)],
    )


def test_classify_refuses_a_vrt_source_as_output(tmp_path: Path) -> None:
    """The old same-path check missed the files behind a VRT: the NAIP was replaced."""
    data = tmp_path / "data"
    data.mkdir()
    gdal.Translate(str(data / "naip.tif"), str(NAIP), srcWin=[0, 0, 64, 64])
    gdal.BuildVRT(str(data / "mosaic.vrt"), [str(data / "naip.tif")])
    weights = np.eye(3, 4, dtype=np.float32)  # 4 bands in, 3 classes out
    model = pointwise_model(tmp_path / "m.onnx", weights, contract=contract_for(3))
    before = snapshot(data)
    for output, match in (
        (data / "naip.tif", r"output would overwrite .*naip\.tif \(a source of .*mosaic\.vrt\)"),
        (data / "naip.tiff", r"naip\.qml, written beside .*naip\.tiff \(the QGIS style of"),
        (data / "mosaic.vrt.aux.xml", "the metadata / statistics file of"),
    ):
        with pytest.raises(InputError, match=match):
            classify(GdalImageSource(data / "mosaic.vrt"), model, OutputPaths(output))
    with pytest.raises(InputError, match=r"probabilities output would overwrite .*naip\.tif"):
        classify(
            GdalImageSource(data / "mosaic.vrt"),
            model,
            OutputPaths(tmp_path / "ok.tif", probabilities=data / "naip.tif"),
        )
    assert snapshot(data) == before
    classify(GdalImageSource(data / "mosaic.vrt"), model, OutputPaths(tmp_path / "ok.tif"))
    assert snapshot(data) == before  # reading the VRT wrote nothing beside it either

# SPDX-License-Identifier: GPL-2.0-or-later
"""Choosing a model's precision variant: ``PRECISION`` auto / fp32 / fp16 / int8 on
CPUs with and without VNNI and on GPUs, through the one model resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.models.catalogue import MODELS_DIR, load_catalogue
from qgis_landcover.core.models.resolve import choose_variant, cpu_has_vnni, resolve_model
from qgis_landcover.core.progress import NullProgress

FP32 = MODELS_DIR / "azure_2018_unet.onnx"
INT8 = MODELS_DIR / "azure_2018_unet_int8.onnx"


class Lines(NullProgress):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx2 avx512f avx512_vnni", True),
        ("fpu sse avx2 avx_vnni", True),
        ("fpu sse avx2 avx512f", False),
    ],
)
def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
    assert cpu_has_vnni(cpuinfo) is expected
    assert cpu_has_vnni(tmp_path / "missing") is False


@pytest.mark.parametrize(
    ("spec", "precision", "on_gpu", "vnni", "expected"),
    [
        ("", "auto", False, True, INT8),  # VNNI CPU, loss within the card's bound
        ("", "auto", False, False, FP32),  # no VNNI: int8 would not be faster
        ("", "auto", True, True, FP32),  # GPU, no fp16 variant shipped
        ("azure-2018-unet", "int8", False, False, INT8),  # explicit wins
        ("azure-2018-unet-int8", "fp32", False, True, FP32),  # from a variant's name too
        ("azure-2018-unet-int8", "auto", False, False, FP32),
        ("azure-2018-unet-finetuned", "auto", False, True, None),  # no variants: itself
    ],
)
def test_variant_chosen(spec, precision, on_gpu, vnni, expected) -> None:
    lines = Lines()
    path = resolve_model(spec, precision=precision, on_gpu=on_gpu, vnni=vnni, progress=lines)
    assert path == (expected or MODELS_DIR / "azure_2018_unet_finetuned.onnx")
    assert len(lines.lines) == 1 and path.name.startswith("azure_2018_unet")
    assert f"({'int8' if path == INT8 else 'fp32'}): " in lines.lines[0]


def test_without_precision_the_model_is_taken_as_named() -> None:
    assert resolve_model("", vnni=True) == FP32


def test_explicit_precision_without_a_variant_is_an_error() -> None:
    with pytest.raises(
        InputError, match=r"'azure-2018-unet' has no fp16 variant \(it has fp32, int8\)"
    ):
        resolve_model("", precision="fp16", vnni=True)
    with pytest.raises(InputError, match="no int8 variant"):
        resolve_model("azure-2018-unet-finetuned", precision="int8")
    with pytest.raises(InputError, match="is a file or URL: use PRECISION=auto"):
        resolve_model(str(FP32), precision="int8")
    with pytest.raises(InputError, match="Unknown precision 'int4'"):
        resolve_model("", precision="int4")


def test_auto_on_gpu_prefers_an_fp16_variant(tmp_path: Path) -> None:
    fp16 = tmp_path / "fp16.onnx"
    fp16.write_bytes(FP32.read_bytes())  # stands in for an fp16 file
    mine = tmp_path / "catalogue.json"
    mine.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "azure-2018-unet-fp16",
                        "file": "fp16.onnx",
                        "precision": "fp16",
                        "variant_of": "azure-2018-unet",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    catalogue = load_catalogue([mine])
    base = catalogue.entry("azure-2018-unet")
    choice = choose_variant(catalogue, base, "auto", on_gpu=True, vnni=True)
    assert choice.entry.file == fp16 and "GPU" in choice.reason
    assert choose_variant(catalogue, base, "auto", on_gpu=False, vnni=True).entry.file == INT8


def test_auto_skips_an_int8_variant_beyond_its_accuracy_bound(tmp_path: Path) -> None:
    mine = tmp_path / "catalogue.json"
    # The fp32 file as "int8": its metadata states no int8 accuracy against fp32.
    mine.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "azure-2018-unet-int8",
                        "file": str(FP32),
                        "precision": "int8",
                        "variant_of": "azure-2018-unet",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    catalogue = load_catalogue([mine])
    choice = choose_variant(
        catalogue, catalogue.entry("azure-2018-unet"), "auto", on_gpu=False, vnni=True
    )
    assert choice.entry.precision == "fp32"
    assert "states no accuracy measured against fp32" in choice.reason


def test_a_variant_of_an_unlisted_model_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "catalogue.json"
    mine.write_text(
        json.dumps({"models": [{"name": "x", "file": str(FP32), "variant_of": "nope"}]}),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="'x' is a variant of 'nope', which they do not list"):
        load_catalogue([mine], include_builtin=False)

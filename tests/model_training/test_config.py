# SPDX-License-Identifier: GPL-2.0-or-later
"""Training configuration: files, overrides, validation, the saved resolved config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from model_training.config import Config, config_from_dict, load_config, save_config
from qgis_landcover.core.errors import InputError

from ..conftest import ROOT

CONFIGS = ROOT / "model_training" / "configs"


@pytest.mark.parametrize(
    "name", ["default.yaml", "demo_cpu.yaml", "finetune_2018.yaml", "scratch_unet.yaml"]
)
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.class_values == [1, 2, 3, 4]
    assert config.data.band_names == ["red", "green", "blue", "nir"]


def test_compared_configs_share_the_split_and_report_the_last_weights() -> None:
    # model_training/release/EVALUATION.md compares these runs on the same held-out column.
    finetune = load_config(CONFIGS / "finetune_2018.yaml")
    scratch = load_config(CONFIGS / "scratch_unet.yaml")
    demo = load_config(CONFIGS / "demo_cpu.yaml")
    assert finetune.data.train == scratch.data.train == demo.data.train
    assert finetune.data.val == scratch.data.val == demo.data.val
    [train], [val] = finetune.data.train, finetune.data.val
    assert train["image"] == val["image"] and train["label"] == val["label"]
    assert train["window"] == [0, 0, 768, 512] and val["window"] == [768, 0, 256, 512]
    assert finetune.train.best_metric == scratch.train.best_metric == "none"
    assert finetune.model.architecture == "model_training.cntk.model:azure2018_for_training"
    assert (ROOT / finetune.model.options["weights"]).is_file()
    # The 2018 network's training crop, and the tile the plugin feeds it.
    assert finetune.model.output_margin == 64 and finetune.export.tile_size == 256


def test_yaml_and_toml_give_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "data:\n  train: [x.csv]\n  patch_size: 64\ntrain:\n  epochs: 3\n"
        "labels:\n  remap: {5: 4, 6: 4}\n"
    )
    (tmp_path / "a.toml").write_text(
        '[data]\ntrain = ["x.csv"]\npatch_size = 64\n[train]\nepochs = 3\n'
        "[labels.remap]\n5 = 4\n6 = 4\n"
    )
    from_yaml = load_config(tmp_path / "a.yaml")
    from_toml = load_config(tmp_path / "a.toml")
    assert from_yaml == from_toml
    assert from_toml.labels.remap == {5: 4, 6: 4}  # TOML's string keys became ints
    assert from_yaml.train.epochs == 3
    assert from_yaml.optim.lr == Config().optim.lr  # untouched defaults stay


def test_overrides_reach_any_field_with_yaml_values(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            "data.train=[a.csv, b.csv]",
            "optim.lr=5e-4",
            "train.amp=bf16",
            "loss.class_weights=[1, 2, 3, 4]",
            "normalization.mean=null",
            "data.val=[{image: v.tif, label: l.tif, window: [0, 0, 64, 64]}]",
        ],
    )
    assert config.data.train == ["a.csv", "b.csv"]
    assert config.optim.lr == 5e-4
    assert config.train.amp == "bf16"
    assert config.loss.class_weights == [1.0, 2.0, 3.0, 4.0]
    assert config.data.val[0]["window"] == [0, 0, 64, 64]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", "Unknown setting(s) in config.train: epoch"),
        ("train.epochs=three", "config.train.epochs must be int"),
        ("train.amp=fp8", "config.train.amp must be one of"),
        ("data.patch_size=100", "data.patch_size (100) must be a positive multiple of 16"),
        ("sampler.rare_classes=[9]", "sampler.rare_classes not in labels.classes: [9]"),
        ("loss.class_weights=[1, 2]", "loss.class_weights needs one weight per class"),
        ("train.epochs", "is not of the form section.field=value"),
        ("train.best_metric=loss", "config.train.best_metric must be one of"),
        ("model.output_margin=-1", "model.output_margin must be >= 0"),
        ("model.output_margin=128", "data.patch_size (256) must exceed twice"),
    ],
)
def test_bad_settings_are_named(override: str, message: str) -> None:
    with pytest.raises(InputError) as error:
        load_config(None, ["data.train=[a.csv]", override])
    assert message in str(error.value)


def test_missing_training_data_is_an_error() -> None:
    with pytest.raises(InputError, match=r"data\.train lists no training data"):
        load_config(None, [])


def test_saved_config_reloads_identically(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "demo_cpu.yaml", ["train.seed=7"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == config

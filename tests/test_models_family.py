"""The pieces every model family shares (smisbench.models.family): one definition of the common config
fields, of the synthetic tiny config and of the codes kind, for every registered model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from smisbench.errors import SmisbenchError
from smisbench.models.family import CGNormConfig, FamilyModel, ModelConfig
from smisbench.models.registry import build_model, get_entry, model_config, model_names

SPADE_STYLE = ("groupdnet", "spade", "vspade", "groupnet", "groupenc", "groupdec", "mulnet")
# the suite's own families (installed plug-ins such as examples/smis_plugin_example are not family models)
BUILT_IN = [n for n in model_names() if isinstance(get_entry(n).build, type) and issubclass(get_entry(n).build, FamilyModel)]
SHARED = {"spectral": True, "norm_kind": "batch", "sync_bn": True, "ndf": 64, "num_D": 2, "n_layers_D": 4}


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_config_is_a_model_config_with_a_synthetic_tiny_one(name):
    entry = get_entry(name)
    assert "synthetic" in entry.datasets()
    for dataset in entry.datasets():
        config = model_config(name, dataset)
        assert isinstance(config, ModelConfig) and config.dataset == dataset
        assert config.data.name == dataset


@pytest.mark.parametrize("name", BUILT_IN)
def test_codes_kind_is_the_model_class_own(name):
    entry = get_entry(name)
    assert entry.codes_kind == entry.build.codes_kind
    assert issubclass(entry.build, FamilyModel)


@pytest.mark.parametrize("name", SPADE_STYLE + ("groupdnet_wo_map",))
def test_spade_style_configs_share_the_switches_with_their_defaults(name):
    config = model_config(name, "deepfashion")
    assert isinstance(config, CGNormConfig)
    assert {key: getattr(config, key) for key in SHARED} == SHARED
    names = [f.name for f in dataclasses.fields(config)]
    assert len(names) == len(set(names))  # each field defined once
    assert model_config(name, "deepfashion", spectral=False, ndf=32).ndf == 32  # still overridable by name


def test_unknown_fields_are_still_refused():
    with pytest.raises(SmisbenchError, match="unknown config fields"):
        model_config("groupdnet", "deepfashion", not_a_field=1)


def test_notes_do_not_change_equality():
    config = model_config("spade", "deepfashion")
    assert dataclasses.replace(config, notes="other") == config


@pytest.mark.parametrize("name", ["groupdnet", "vspade", "bicyclegan", "dscgan", "pix2pixhd"])
def test_family_model_builds_g_then_e_then_codes(name):
    torch.manual_seed(0)
    model = build_model(name, "synthetic")
    assert list(model.parts()) == (["G", "E"] if model.netE is not None else ["G"])
    assert model.config == model_config(name, "synthetic")
    assert (model.latent is None) == (name == "pix2pixhd")


def test_every_family_of_the_suite_is_a_family_model():
    ours = {"groupdnet", "spade", "vspade", "groupnet", "groupenc", "groupdec", "mulnet", "pix2pixhd", "bicyclegan",
            "dscgan", "groupdnet_wo_map", "groupdnet_wo_split", "groupdnet_groupnorm", "groupdnet_wo_syncbn",
            "groupdnet_wo_specnorm"}
    assert ours <= set(BUILT_IN)

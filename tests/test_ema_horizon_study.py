"""tools/ema_horizon_study.py: the extra EMAs kept beside a run are the EMAs that runs with those settings keep."""
from __future__ import annotations

import argparse

import pytest
import torch

from conftest import tiny_config, tiny_train_config, tiny_train_data
from ddpm_lite.training import train
from tools import ema_horizon_study as study_script


def test_a_variant_is_the_ema_of_a_run_trained_with_that_decay(tmp_path):
    """k10 with cap 0.2 (binding from step 3 on) is the recipe's warm-up with ema_decay 0.2: a second run with that
    setting is the oracle; k10 with 0.999 is the run's own EMA; another horizon gives other weights."""
    cfg, data, model_cfg = tiny_train_config(tmp_path / "study"), tiny_train_data(), tiny_config(image_size=8)
    files = study_script.study(cfg, [study_script.parse_variant("k10:0.2"), study_script.parse_variant("k3:0.9999")],
                               {3, 6}, model_cfg=model_cfg, data=data)
    names = [f"{v}_step{s}.pt" for v in ("k10c999", "k10c2", "k3c9999") for s in (3, 6)]
    assert sorted(f.name for f in files) == sorted(names)
    oracle = train(tiny_train_config(tmp_path / "oracle", ema_decay=0.2), model_cfg, progress=False, data=data)
    own = train(tiny_train_config(tmp_path / "own"), model_cfg, progress=False, data=data)
    load = lambda name: torch.load(tmp_path / "study" / name, weights_only=True)["ema"]  # noqa: E731
    for name, expected in (("k10c2_step6.pt", oracle["ema"]), ("k10c999_step6.pt", own["ema"])):
        assert all(torch.equal(load(name)[key], expected[key]) for key in expected), name
    assert not all(torch.equal(load("k3c9999_step6.pt")[key], own["ema"][key]) for key in own["ema"])
    assert load("k3c9999_step6.pt").keys() == own["ema"].keys() and "optimizer" not in torch.load(
        tmp_path / "study" / "k3c9999_step6.pt", weights_only=True)


@pytest.mark.parametrize("text, message", [("k1:0.9", "K >= 2"), ("k5:1.0", "0 < CAP < 1"), ("5-0.9", "kK:CAP")])
def test_a_malformed_variant_is_refused_naming_the_form(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        study_script.parse_variant(text)

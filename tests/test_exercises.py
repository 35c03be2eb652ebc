"""The build-it-yourself checker (ddpm_lite.lab.exercises): it passes the library's own answers and the notebooks'
solutions, fails a wrong answer with one line naming the mismatch, and reports a blank as not done, without raising.
"""
from __future__ import annotations

import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddpm_lite import unet
from ddpm_lite.lab import exercises
from tools import run_notebooks

COURSE = ["01_", "02_", "03_", "04_", "05_", "06_", "08_"]  # where the issue asks for build-it-yourself exercises
PREAMBLE = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\nimport ddpm_lite\n" \
           "from ddpm_lite.lab import exercises\n"


def checked(line: str) -> str:
    return line.split(":", 1)[0]


@pytest.mark.parametrize("name", list(exercises.EXERCISES))
def test_the_library_passes_its_own_check(name, capsys):
    assert exercises.check(name, exercises.EXERCISES[name].reference)
    assert capsys.readouterr().out.startswith(f"{name}: correct")


@pytest.mark.parametrize("name", [*exercises.EXERCISES, "ResBlock"])
def test_a_blank_is_not_done_yet_and_raises_nothing(name, capsys):
    def blank(*args):
        raise NotImplementedError

    class Blank(nn.Module):
        def __init__(self, *args):
            super().__init__()

        def forward(self, x, emb):
            raise NotImplementedError

    assert exercises.check(name, Blank if name == "ResBlock" else blank) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{name}: not done yet" in out


def test_a_function_returning_none_is_not_done_yet(capsys):
    assert exercises.check("ddim_step", lambda *args: None) is False
    assert "not done yet" in capsys.readouterr().out


def test_a_wrong_coefficient_is_named_with_its_trial_index_and_values(capsys):
    def q_sample(schedule, x0, t, eps):  # forgot the square roots of Eq. 4
        ab = schedule.alpha_bars[t].view(-1, 1, 1, 1)
        return ab * x0 + (1 - ab) * eps

    assert exercises.check("q_sample", q_sample) is False
    out = capsys.readouterr().out
    assert re.match(r"q_sample: trial 1: differs at index \(\d+, \d+, \d+, \d+\): yours -?[\d.e-]+, the library's", out)


def test_a_wrong_shape_and_an_error_are_reported_in_one_line(capsys):
    assert exercises.check("guide", lambda c, u, w: (c - u).mean(dim=0)) is False
    assert "shape (1, 8, 8) where the library gives (4, 1, 8, 8)" in capsys.readouterr().out
    assert exercises.check("paste", lambda x, known, mask: x.view(3, -1)) is False
    assert "your function raised RuntimeError" in capsys.readouterr().out


def test_an_update_that_forgets_the_buffers_or_swaps_the_decay_fails(capsys):
    def swapped(ema, model, decay):
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, decay)

    assert exercises.check("ema_update", swapped) is False
    assert "ema_update: trial" in capsys.readouterr().out
    assert exercises.check("ema_update", lambda ema, model, decay: None) is False  # weights untouched
    assert "not done yet" in capsys.readouterr().out


def test_the_ddpm_step_check_reaches_beyond_the_last_step(capsys):
    # x0_pred is the right answer on the last step only (ab_prev = 1): trial 2 must catch it
    assert exercises.check("ddpm_step", lambda x0_pred, xt, eps, ab, ab_prev, noise: x0_pred) is False
    assert "trial 2" in capsys.readouterr().out


class Block(nn.Module):
    """ResBlock written afresh with other names: the checker copies the library's weights in order."""

    def __init__(self, c_in, c_out, emb_dim, groups, act=F.silu):
        super().__init__()
        self.a, self.b = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(emb_dim, c_out)
        self.c, self.d = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.act = act

    def forward(self, x, emb):
        h = self.b(self.act(self.a(x))) + self.time(emb)[:, :, None, None]
        return self.shortcut(x) + self.d(self.act(self.c(h)))


def test_a_block_of_other_names_passes_and_a_wrong_activation_fails(capsys):
    assert exercises.check("ResBlock", Block)
    assert exercises.check("ResBlock", lambda *a: Block(*a, act=F.relu)) is False
    assert "the output: differs at index" in capsys.readouterr().out.splitlines()[-1]
    assert exercises.check("ResBlock", lambda *a: unet.ResBlock(*a, dropout=0.0))


def test_a_block_of_other_layers_says_which_parameters_it_expects(capsys):
    assert exercises.check("ResBlock", lambda c_in, c_out, emb, g: nn.Conv2d(c_in, c_out, 3)) is False
    assert "expected parameters (in this order) norm1.weight (8,)" in capsys.readouterr().out


def test_loss_curves_agree_only_step_for_step(capsys):
    assert exercises.compare_losses([0.5, 0.4, 0.3], [0.5, 0.4, 0.3])
    assert not exercises.compare_losses([0.5, 0.41, 0.3], [0.5, 0.4, 0.3])
    assert "part at step 1" in capsys.readouterr().out.splitlines()[-1]
    assert not exercises.compare_losses([], [0.5])


def _solutions(prefix: str) -> list[str]:
    (path,) = run_notebooks.notebook_paths([prefix])
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "solution" in c.metadata.get("tags", []) and "exercises.check(" in c.source]


def test_seven_build_it_yourself_exercises_across_the_course():
    per_notebook = {p: len(_solutions(p)) for p in COURSE}
    assert sum(per_notebook.values()) >= 7 and all(per_notebook.values()), per_notebook


@pytest.mark.parametrize("prefix", [*COURSE, "10_"])
def test_the_notebooks_solutions_pass_the_check(prefix, capsys, monkeypatch):
    monkeypatch.setenv("DDPM_LITE_FAST", "1")
    for source in _solutions(prefix):
        exec(compile(PREAMBLE + source, f"{prefix} solution", "exec"), {})  # each ends: assert exercises.check(...)
        assert ": correct" in capsys.readouterr().out


def test_the_embedding_check_takes_the_frequencies_written_either_way(capsys):
    import math

    def as_powers(t, dim):  # 10000^(-k/half) rather than exp(-log(10000) k / half): equal up to float32 rounding
        half = dim // 2
        args = t.float()[:, None] * (10000.0 ** (-torch.arange(half) / half))[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)

    assert exercises.check("timestep_embedding", as_powers)
    assert not exercises.check("timestep_embedding", lambda t, dim: as_powers(t, dim).roll(1, dims=1))
    assert not exercises.check("timestep_embedding", lambda t, dim: as_powers(t * math.pi / math.pi + 1, dim))


def test_a_check_leaves_the_global_random_state_as_it_was():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    exercises.check("loss", exercises.EXERCISES["loss"].reference)  # builds a seeded UNet inside
    exercises.check("ResBlock", lambda *a: unet.ResBlock(*a, dropout=0.0))
    assert torch.equal(torch.rand(3), expected)

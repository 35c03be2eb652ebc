"""Progressive distillation: nested grids, v-prediction's conversions, the two-step target against the library's
DDIM, a student that learns towards it, and a run that resumes to the bit and refuses another run's state."""
import pytest
import torch

from conftest import save_tiny_checkpoint, tiny_train_data, tiny_unet
from ddpm_lite import checkpoint, sample
from ddpm_lite.diffusion import eps_from_v, eps_from_x0, q_sample, v_from_x0, x0_from_v
from ddpm_lite.distill import (TEACHER_STEPS, DistillConfig, ddim_to, distill, new_stage,
                               single_step_x0, student_loss, student_steps, teacher_target)
from ddpm_lite.errors import CheckpointError
from ddpm_lite.samplers import ddim_step, reverse_process, timestep_pairs
from ddpm_lite.schedule import Schedule

SCHEDULE = Schedule.cosine(50)


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("teacher") / "t.pt", tiny_unet(seed=3, image_size=8),
                                SCHEDULE)


def config(out, teacher, **kw):
    base = dict(teacher=str(teacher), start_steps=8, final_steps=2, steps_per_stage=4, batch_size=8, lr=1e-3,
                warmup=1, ckpt_every=2, out_dir=str(out), device="cpu")
    return DistillConfig(**{**base, **kw})


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32])
def test_each_trailing_grid_is_every_other_step_of_the_grid_twice_as_fine(n):
    coarse, fine = timestep_pairs(1000, n, grid="trailing"), timestep_pairs(1000, 2 * n, grid="trailing")
    assert [t for t, _ in coarse] == [t for t, _ in fine][::2]
    assert coarse[0][0] == 999 and coarse[-1][1] == -1 and len(coarse) == n
    assert [t_prev for _, t_prev in coarse[:-1]] == [t for t, _ in coarse[1:]]


def test_the_linspace_grid_is_unchanged_and_the_trailing_one_refuses_a_power():
    assert timestep_pairs(1000, 4) == [(999, 666), (666, 333), (333, 0), (0, -1)]
    assert timestep_pairs(1000, 4, grid="trailing") == [(999, 749), (749, 499), (499, 249), (249, -1)]
    with pytest.raises(ValueError, match="spacing must be 1"):
        timestep_pairs(1000, 4, spacing=2, grid="trailing")
    with pytest.raises(ValueError, match="unknown grid"):
        timestep_pairs(1000, 4, grid="leading")


def test_v_converts_to_x0_and_eps_and_back(gen):
    x0, eps = torch.randn(6, 1, 8, 8, generator=gen), torch.randn(6, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 5, 10, 20, 40, 49])
    xt, ab = q_sample(SCHEDULE, x0, t, eps), SCHEDULE.alpha_bars[t].view(-1, 1, 1, 1)
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0  # Salimans & Ho 2022, Sec. 4
    torch.testing.assert_close(x0_from_v(ab, xt, v), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(eps_from_v(ab, xt, v), eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(v_from_x0(ab, xt, x0), v, atol=1e-4, rtol=0)


def test_a_v_model_samples_as_the_eps_model_it_was_converted_from(gen):
    schedule = Schedule.linear(100)  # alpha_bar_T not tiny: the conversion to v stays well conditioned
    eps_model = tiny_unet(seed=4, image_size=8, num_classes=None)

    class AsV(torch.nn.Module):
        config, prediction = eps_model.config, "v"

        def __init__(self):
            super().__init__()
            self.inner = eps_model

        def forward(self, x, t, labels=None):
            ab = schedule.alpha_bars[t].view(-1, 1, 1, 1)
            x0 = ((x - (1 - ab).sqrt() * self.inner(x, t, labels)) / ab.sqrt()).double()
            return v_from_x0(ab.double(), x.double(), x0).float()
    x_T = torch.randn(4, 1, 8, 8, generator=gen)
    for steps in (3, 10):
        a = sample(eps_model, schedule, x_T=x_T, steps=steps, eta=0.0)
        b = sample(AsV(), schedule, x_T=x_T, steps=steps, eta=0.0)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_one_step_with_the_target_lands_where_the_teachers_two_steps_land(teacher_path, gen):
    teacher, schedule = checkpoint.load_model(teacher_path)
    n, z = 4, torch.randn(4, 1, 8, 8, generator=gen)
    labels = torch.tensor([0, 3, 10, 7])  # 10: "no label"
    for i in range(n):
        t, t_mid, t_next = student_steps(schedule.T, n, torch.full((4,), i))
        two = reverse_process(teacher, schedule, z, [(int(t[0]), int(t_mid[0])), (int(t_mid[0]), int(t_next[0]))],
                              TEACHER_STEPS, labels=labels)
        assert torch.equal(ddim_to(teacher, schedule, ddim_to(teacher, schedule, z, t, t_mid, labels), t_mid,
                                   t_next, labels), two)
        x_target = teacher_target(teacher, schedule, z, t, t_mid, t_next, labels)
        ab, ab_next = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_next)
        one = ddim_step(x_target, z, eps_from_x0(ab, z, x_target), ab, ab_next, torch.zeros_like(z))
        torch.testing.assert_close(one, two, atol=2e-5, rtol=0)
    assert torch.equal(single_step_x0(ab, torch.ones_like(ab), z, two), two)  # the last step: x~ is z_t' itself


def test_each_sample_takes_its_own_step(teacher_path, gen):
    teacher, schedule = checkpoint.load_model(teacher_path)
    z, i = torch.randn(4, 1, 8, 8, generator=gen), torch.tensor([3, 0, 2, 1])
    together = teacher_target(teacher, schedule, z, *student_steps(schedule.T, 4, i), None)
    for k in range(4):
        alone = teacher_target(teacher, schedule, z[k:k + 1], *student_steps(schedule.T, 4, i[k:k + 1]), None)
        torch.testing.assert_close(together[k:k + 1], alone, atol=1e-5, rtol=0)  # batched convolution rounding


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_a_student_started_as_the_teacher_moves_towards_the_two_step_target(teacher_path, tmp_path, gen, prediction):
    st = new_stage(config(tmp_path, teacher_path, prediction=prediction), 4, teacher_path, 64, "cpu")
    x0 = torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
    t, t_mid, t_next = student_steps(SCHEDULE.T, 4, torch.arange(8) % 4)
    z = q_sample(SCHEDULE, x0, t, torch.randn(8, 1, 8, 8, generator=gen))
    target = teacher_target(st.teacher, SCHEDULE, z, t, t_mid, t_next, None)
    losses = []
    for _ in range(6):
        loss = student_loss(st.student, prediction, SCHEDULE, z, t, None, target)
        losses.append(loss.item())
        st.opt.zero_grad()
        loss.backward()
        st.opt.step()
    assert losses[-1] < 0.8 * losses[0], losses


def test_a_run_stopped_and_continued_ends_with_the_uninterrupted_runs_students(teacher_path, tmp_path):
    data = tiny_train_data()
    whole = distill(config(tmp_path / "whole", teacher_path), data=data, progress=False)
    assert whole.name == "student_2.pt" and (tmp_path / "whole" / "student_4.pt").is_file()
    cut = config(tmp_path / "cut", teacher_path)
    left = distill(cut, data=data, progress=False, callback=lambda n, step, loss, ema: not (n == 4 and step == 3))
    assert left.name == "stage_4.pt" and checkpoint.load(left)["step"] == 3
    assert distill(cut, data=data, progress=False).name == "student_2.pt"
    for name in ("student_4.pt", "student_2.pt"):
        a, b = checkpoint.load(tmp_path / "whole" / name), checkpoint.load(tmp_path / "cut" / name)
        assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert not list((tmp_path / "cut").glob("stage_*.pt"))  # each finished stage's resume state is gone


def test_the_student_file_samples_with_its_own_steps_and_v(teacher_path, tmp_path, gen):
    path = distill(config(tmp_path, teacher_path, final_steps=4, start_steps=8), data=tiny_train_data(),
                   progress=False)
    model, schedule = checkpoint.load_model(path)
    assert model.prediction == "v" and model.sampling.steps == 4 and model.sampling.grid == "trailing"
    assert checkpoint.load(path)["distill"]["teacher"] == "t.pt"
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(int(i[1][0])))
    sample(model, schedule, 2, generator=gen)
    assert calls == [t for t, _ in timestep_pairs(schedule.T, 4, grid="trailing")]


def test_another_runs_state_is_refused(teacher_path, tmp_path):
    data = tiny_train_data()
    distill(config(tmp_path, teacher_path), data=data, progress=False, callback=lambda *a: False)
    with pytest.raises(CheckpointError, match="other settings"):
        distill(config(tmp_path, teacher_path, lr=5e-4), data=data, progress=False)


@pytest.mark.parametrize("kw, match", [(dict(start_steps=12, final_steps=4), "halves"),
                                       (dict(start_steps=4, final_steps=4), "halves"),
                                       (dict(prediction="x"), "prediction"), (dict(lr=0.0), "lr")])
def test_settings_that_make_no_run_are_refused(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        config(tmp_path, "t.pt", **kw)

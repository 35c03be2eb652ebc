"""The sliders driven from Python, no browser: set a value, then compare the picture the widget shows (decoded from
its PNG bytes) with the picture computed independently from q_sample, the sampler's trajectory or sample()."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require, tiny_unet

require("ipywidgets")  # in the dev and notebooks extras: required

from ddpm_lite import checkpoint  # noqa: E402
from ddpm_lite.checkpoint import load_model  # noqa: E402
from ddpm_lite.data import to_uint8  # noqa: E402
from ddpm_lite.diffusion import q_sample  # noqa: E402
from ddpm_lite.lab import twins, widgets  # noqa: E402
from ddpm_lite.lab.snapshots import snapshot_payload  # noqa: E402
from ddpm_lite.lab.viz import decode_png, grid_uint8  # noqa: E402
from ddpm_lite.samplers import SamplerSettings, sample, sample_trajectory  # noqa: E402
from ddpm_lite.schedule import Schedule  # noqa: E402

WHITE_GAP = 8


def big(a: np.ndarray, k: int) -> np.ndarray:
    return a.repeat(k, 0).repeat(k, 1)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    """Three stand-in digits in [-1, 1]: mostly -1 (background) with random strokes at +1, like MNIST."""
    strokes = torch.rand(3, 1, 28, 28, generator=seeded(0)) < 0.2
    return torch.where(strokes, 1.0, -1.0)


@pytest.fixture(scope="module")
def forward(digits):
    return widgets.forward_slider(digits, T=100, seed=5)


def expected_forward(schedule, x0, i, t, scale, seed=5):
    """The documented rule: digit i's eps comes from seed + i; paper t >= 1 is code index t - 1; t = 0 is x0."""
    eps = torch.randn((1, 28, 28), generator=seeded(seed + i))
    xt = x0[i] if t == 0 else q_sample(schedule, x0[i:i + 1], torch.tensor([t - 1]), eps[None])[0]
    return big(to_uint8(xt)[0].numpy(), scale)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_forward_slider_shows_q_sample_at_code_index_t_minus_1(forward, digits, kind):
    schedule = Schedule.build(kind, 100)
    forward.schedule_menu.value = kind
    for i in (0, 2):
        forward.digit_menu.value = i
        for t in (0, 1, 37, 100):
            forward.slider.value = t
            expected = expected_forward(schedule, digits, i, t, forward.scale)
            assert np.array_equal(forward.frame(), expected), (kind, i, t)
            assert f"t = {t}</b>" in forward.status.value
    assert forward.errors == []


def test_forward_noise_is_fixed_per_digit_so_neighbouring_t_look_alike(digits):
    w = widgets.forward_slider(digits, T=1000, seed=0, t=500)
    a = w.frame().astype(int)
    w.slider.value = 501
    b = w.frame().astype(int)
    w.digit_menu.value = 1  # another digit: another noise draw, a very different picture
    w.slider.value = 500
    c = w.frame().astype(int)
    assert np.abs(a - b).mean() < 2 < 40 < np.abs(a - c).mean()
    assert w.errors == []


def test_forward_curve_marker_sits_on_the_selected_schedule_at_t(forward):
    forward.schedule_menu.value = "linear"
    cols = {}
    for t in (0, 30, 90):
        forward.slider.value = t
        shown = widgets.decode_png(forward.images[1].value)  # (H, W, 3)
        for (c, r) in forward.curves.points["linear"]:
            assert (shown[r[t], c[t]] == [214, 39, 40]).all(), t  # the red marker
        cols[t] = forward.curves.points["linear"][0][0][t]
        ab_rows = forward.curves.points["linear"][0][1]
    assert cols[0] < cols[30] < cols[90]
    assert ab_rows[0] < ab_rows[30] < ab_rows[90]  # alpha_bar falls: the marker goes down the picture
    assert forward.errors == []


def test_forward_histogram_bars_follow_the_pixels(forward):
    """The digits are exactly -1 or +1, so at t = 0 no bar stands over 0; at t = T, x_t ~ N(0, 1) has one there."""
    hist = forward.hist
    centre = (hist.cols[24] + hist.cols[25]) // 2  # the bin [0, 1/6)
    bars = {}
    for t in (0, 100):
        forward.slider.value = t
        shown = widgets.decode_png(forward.images[2].value)
        bars[t] = (shown[hist.row_top:hist.row0, centre] == [31, 119, 180]).all(axis=1).sum()
    assert bars[0] == 0 < bars[100]


def test_forward_slider_checks_its_input(digits):
    with pytest.raises(ValueError, match="shape"):
        widgets.forward_slider(digits[:, 0])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        widgets.forward_slider(digits * 3)
    pixels = torch.randint(0, 256, (2, 1, 28, 28), generator=seeded(1), dtype=torch.uint8)
    w = widgets.forward_slider(pixels, T=10, t=0)  # uint8 is converted, and t = 0 shows it unchanged
    assert np.array_equal(w.frame()[::w.scale, ::w.scale], pixels[0, 0].numpy())


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_reverse_slider_shows_the_trajectory_without_calling_the_network(sampler):
    model, schedule = tiny_unet(), Schedule.cosine(20)
    w = widgets.reverse_slider(model, schedule, sampler=sampler, steps=4, n=3, seed=7)
    traj = sample_trajectory(model, schedule, 3, sampler=sampler, steps=4, generator=seeded(7))
    x = traj.x
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    gap = np.full((32, WHITE_GAP), 255, np.uint8)  # a 3-wide grid of 28 px tiles with 2 px padding is 32 px high
    for k in [0, 1, 2, 3, 4, 2, 0]:
        w.slider.value = k
        left, right = (traj.xt[k], traj.x0_pred[k]) if k < 4 else (x, x)
        expected = big(np.hstack([grid_uint8(left, 3), gap, grid_uint8(right, 3)]), w.scale)
        assert np.array_equal(w.frame(), expected), k
        assert f"step {k}/4" in w.status.value and (k < 4) == ("final samples" not in w.status.value)
    assert calls == [] and w.errors == []
    # a precomputed Trajectory alone gives the same pictures
    v = widgets.reverse_slider(traj)
    for k in range(5):
        w.slider.value = v.slider.value = k
        assert np.array_equal(v.frame(), w.frame()), k


def test_reverse_slider_input_errors():
    schedule = Schedule.cosine(20)
    with pytest.raises(ValueError, match="schedule"):
        widgets.reverse_slider(tiny_unet())
    with pytest.raises(ValueError, match="unconditional"):
        widgets.reverse_slider(tiny_unet(num_classes=None), schedule, steps=2, n=2, labels=3)


def test_guidance_slider_regenerates_with_a_fixed_seed_and_caches():
    model, schedule = tiny_unet(seed=3), Schedule.cosine(20)
    w = widgets.guidance_slider(model, schedule, scales=(0, 2), steps=3, seed=4, n=3)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    w.digit_menu.value = 7
    shown = {}
    for scale in (2.0, 0.0):
        w.slider.value = scale
        x = sample(model, schedule, 3, sampler="ddim", steps=3, labels=torch.full((3,), 7), guidance=scale,
                   generator=seeded(4))
        assert np.array_equal(w.frame(), big(grid_uint8(x, 3), w.scale)), scale
        assert f"w = {scale:g}</b> &middot; digit 7" in w.status.value
        shown[scale] = w.frame()
    assert not np.array_equal(shown[0.0], shown[2.0])  # guidance changes the samples
    before = len(calls)
    w.slider.value = 2.0  # seen before: from the cache, no network call
    assert len(calls) == before and "cached" in w.status.value
    assert np.array_equal(w.frame(), shown[2.0]) and w.errors == []
    with pytest.raises(ValueError, match="class-conditional"):
        widgets.guidance_slider(tiny_unet(num_classes=None), schedule)


def test_a_failing_callback_is_recorded_and_shown_not_swallowed(digits):
    w = widgets.forward_slider(digits, T=10)
    w.draw = lambda: 1 / 0
    w.slider.value = 3  # must not raise: ipywidgets would hide it; the widget keeps and shows it instead
    assert len(w.errors) == 1 and isinstance(w.errors[0], ZeroDivisionError)
    assert "ZeroDivisionError" in w.error.value


def test_widget_box_holds_the_controls_and_the_classes_the_browser_test_finds(digits):
    w = widgets.forward_slider(digits, T=10)
    assert w.slider in w.container.children[0].children and w.image in w.container.children[2].children
    assert {"ddpm-lite-widget", "ddpm-lite-forward"} <= set(w.container._dom_classes)
    assert "ddpm-lite-image" in w.image._dom_classes and "ddpm-lite-status" in w.status._dom_classes


def test_static_twins_write_the_same_pictures(tmp_path, digits):
    import imageio.v3 as iio
    gif = iio.imread(twins.save_forward_gif(tmp_path / "f.gif", digits, schedule="linear", T=50, frames=6, seed=5,
                                              nrow=3), index=None)
    schedule = Schedule.linear(50)
    eps = torch.stack([torch.randn((1, 28, 28), generator=seeded(5 + i)) for i in range(3)])
    last = grid_uint8(q_sample(schedule, digits, torch.full((3,), 49), eps), 3)
    grey = lambda f: f if f.ndim == 2 else f[..., 0]  # noqa: E731
    assert len(gif) == 6
    assert np.array_equal(grey(gif[0]), grid_uint8(digits, 3)) and np.array_equal(grey(gif[-1]), last)

    model, cosine = tiny_unet(), Schedule.cosine(20)
    x = sample(model, cosine, 2, steps=3, generator=seeded(1))
    gif = iio.imread(twins.save_reverse_gif(tmp_path / "r.gif", model, cosine, steps=3, n=2, seed=1, scale=1),
                     index=None)
    assert len(gif) == 4
    final = grid_uint8(x, 2)
    assert np.array_equal(grey(gif[-1]), np.hstack([final, np.full((32, WHITE_GAP), 255, np.uint8), final]))

    for path in (twins.save_forward_strip(tmp_path / "s.png", digits, T=50, ts=(0, 25, 50)),
                 twins.save_guidance_strip(tmp_path / "g.png", model, cosine, digit=1, scales=(0, 3), steps=2,
                                             n=3)):
        assert decode_png(path.read_bytes()).shape[0] > 60


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """Three progress snapshots of a pretend run: tiny models at steps 10, 200, 3000, through the real export."""
    folder, paths = tmp_path_factory.mktemp("progress"), []
    for k, step in enumerate((10, 200, 3000)):
        model = tiny_unet(seed=k)
        ckpt = {"model_config": model.config.to_dict(), "schedule": Schedule.cosine(20).to_dict(),
                "ema": model.state_dict(), "step": step, "train_config": {"dataset": "mnist", "batch_size": 64},
                "history": [[step, 1.0 / step, 1e-3, 50.0]], "meta": {"elapsed_s": 6.0 * step}}
        paths.append(checkpoint.save(snapshot_payload(ckpt), folder / f"step_{step:06d}.pt"))
    return paths


LEARN = dict(sampler="ddim", steps=3, eta=0.7, eps_scaling=0.98)


def test_learning_slider_decodes_the_same_noise_with_each_snapshot(snapshots):
    w = widgets.learning_slider(snapshots, n=6, seed=3, settings=SamplerSettings(**LEARN), nrow=3)
    shown = {}
    for k in (3, 1, 2):
        model, schedule = load_model(snapshots[k - 1])  # the float16 weights, as float32
        expected = sample(model, schedule, 6, labels=torch.arange(6) % 10, generator=seeded(3), **LEARN)
        w.slider.value = k
        assert np.array_equal(w.frame(), big(grid_uint8(expected, 3), 2)), k
        shown[k] = w.frame()
    assert not np.array_equal(shown[1], shown[3])  # other weights, other digits
    w.slider.value = 2
    step, images, epochs, minutes = 200, "12,800", f"{200 * 64 / 60_000:.2f}", f"{200 * 6.0 / 60:.1f}"
    assert w.status.value == (f"<b>snapshot 2/3</b> &middot; step {step} &middot; {images} images &middot; "
                              f"{epochs} epochs &middot; {minutes} min of training &middot; loss 0.0050 &middot; "
                              f"DDIM 3 steps, eta 0.7, eps / 0.98, seed 3")
    assert {"ddpm-lite-widget", "ddpm-lite-learning"} <= set(w.container._dom_classes) and w.errors == []


def test_learning_slider_default_sampler_is_the_recipes_setting_with_labels_in_turn(snapshots):
    w = widgets.learning_slider(snapshots[:1], n=4, seed=0)
    model, schedule = load_model(snapshots[0])
    x = sample(model, schedule, 4, labels=torch.arange(4), generator=seeded(0), sampler="ddim", steps=20, eta=1.0,
               eps_scaling=0.98)
    assert np.array_equal(w.frame(), big(grid_uint8(x, 10), 2))
    assert "DDIM 20 steps, eta 1, eps / 0.98, seed 0" in w.status.value
    with pytest.raises(ValueError, match="no snapshots"):
        widgets.learning_slider([])


def test_learning_twin_shows_the_same_pictures_in_rows(snapshots, tmp_path, monkeypatch):
    settings = SamplerSettings(**LEARN)
    w = widgets.learning_slider(snapshots, n=6, seed=3, settings=settings, nrow=3, scale=1)
    drawn, save_rows = {}, twins._save_rows

    def spy(path, rows, *args, **kw):  # the rows the figure is drawn from
        drawn.update(rows=rows, args=args)
        return save_rows(path, rows, *args, **kw)
    monkeypatch.setattr(twins, "_save_rows", spy)
    path = twins.save_learning_strip(tmp_path / "learn.png", snapshots, n=6, seed=3, settings=settings, nrow=3)
    for k, row in enumerate(drawn["rows"], start=1):
        w.slider.value = k
        assert np.array_equal(row, w.frame()), k
    names, heads = drawn["args"]
    assert names == ["step 10\n0.01 epochs\n1.0 min", "step 200\n0.21 epochs\n20.0 min",
                     "step 3,000\n3.20 epochs\n300.0 min"]
    assert heads == ["0", "1", "2"]  # the labels of the first line of digits
    assert decode_png(path.read_bytes()).shape[0] > 3 * 60


def test_steps_slider_shows_each_model_at_k_steps_from_the_same_noise():
    schedule = Schedule.cosine(20)
    teacher, student = tiny_unet(seed=1), tiny_unet(seed=2)
    student.prediction, student.sampling = "v", SamplerSettings(steps=2, grid="trailing")  # as a distilled student
    plain = SamplerSettings(sampler="ddim", eta=0.0, grid="trailing")
    models = {"teacher": (teacher, plain), "student": (student, None)}
    w = widgets.steps_slider(models, schedule, steps=(1, 2, 4), n=3, seed=5, value=2)
    gap = np.full((32, WHITE_GAP), 255, np.uint8)  # a 3-wide grid of 28 px tiles with 2 px padding is 32 px high
    draw = lambda m, k, **kw: grid_uint8(sample(m, schedule, 3, labels="all", generator=seeded(5), steps=k,  # noqa
                                                **kw), 3)
    expected = {k: big(np.hstack([draw(teacher, k, eta=0.0, grid="trailing"), gap, draw(student, k)]), 3)
                for k in (1, 2, 4)}
    calls = []
    for m in (teacher, student):
        m.register_forward_hook(lambda *a: calls.append(1))
    assert w.slider.value == 2
    for k in (4, 1, 2):
        w.slider.value = k
        assert np.array_equal(w.frame(), expected[k]), k
        assert w.status.value.startswith(f"<b>{k} step{'s' if k > 1 else ''}</b>")
    assert "teacher (DDIM, eta 0, trailing grid), student (DDIM, eta 0, trailing grid)" in w.status.value
    assert calls == [] and w.errors == []  # sampled once, when built
    assert {"ddpm-lite-widget", "ddpm-lite-steps"} <= set(w.container._dom_classes)
    with pytest.raises(ValueError, match="at least one"):
        widgets.steps_slider({}, schedule)


def test_steps_twin_shows_the_sliders_pictures_in_rows(tmp_path, monkeypatch):
    schedule = Schedule.cosine(20)
    models = {"ddim": (tiny_unet(seed=1), SamplerSettings(sampler="ddim")),
              "dpm++": (tiny_unet(seed=1), SamplerSettings(sampler="dpm++"))}
    w = widgets.steps_slider(models, schedule, steps=(1, 3), n=3, seed=2, scale=1)
    drawn, save_rows = {}, twins._save_rows

    def spy(path, rows, *args, **kw):
        drawn.update(rows=rows, args=args)
        return save_rows(path, rows, *args, **kw)
    monkeypatch.setattr(twins, "_save_rows", spy)
    path = twins.save_steps_strip(tmp_path / "steps.png", models, schedule, steps=(1, 3), n=3, seed=2)
    gap = np.full((32, WHITE_GAP), 255, np.uint8)
    for j, k in enumerate((1, 3)):
        w.slider.value = k
        assert np.array_equal(w.frame(), np.hstack([drawn["rows"][2 * j], gap, drawn["rows"][2 * j + 1]])), k
    assert drawn["args"] == (["ddim\n1 step", "dpm++\n1 step", "ddim\n3 steps", "dpm++\n3 steps"], ["0", "1", "2"])
    assert decode_png(path.read_bytes()).shape[0] > 4 * 30

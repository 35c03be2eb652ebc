"""The training preview: when it draws, that it draws exactly what sample() gives from its fixed noise, the PNG it
writes, and that during training it shows the EMA weights of that very step, across an interruption too."""
import pytest
import torch

from conftest import tiny_config, tiny_train_config, tiny_train_data, tiny_unet
from ddpm_lite import checkpoint, sample, train
from ddpm_lite.lab import viz
from ddpm_lite.lab.preview import Preview
from ddpm_lite.schedule import Schedule

SCHEDULE = Schedule.cosine(20)


def test_it_draws_every_k_steps_and_at_the_last_one():
    model = tiny_unet()
    preview = Preview(SCHEDULE, every=3, last=7, n=4, steps=2)
    for step in range(1, 8):
        preview(step, 0.1, None, model)
    steps, frames = preview.sequence()
    assert steps == [3, 6, 7] and frames.shape == (3, 4, 1, 28, 28)


def test_each_frame_is_sample_from_the_same_seeded_noise_with_labels_in_turn():
    model = tiny_unet()
    preview = Preview(SCHEDULE, every=1, n=12, steps=3, seed=5)
    expected = sample(model, SCHEDULE, 12, labels=torch.arange(12) % 10, generator=torch.Generator().manual_seed(5),
                      sampler="ddim", steps=3, eta=0.0)
    assert torch.equal(preview.draw(model), expected) and torch.equal(preview.draw(model), expected)
    unconditional = tiny_unet(num_classes=None)
    assert torch.equal(preview.draw(unconditional), sample(unconditional, SCHEDULE, 12, sampler="ddim", steps=3,
                                                           generator=torch.Generator().manual_seed(5)))


def test_with_a_path_each_grid_is_written_as_png(tmp_path):
    preview = Preview(SCHEDULE, every=2, n=4, steps=2, nrow=2, zoom=3, path=tmp_path / "out" / "preview.png")
    preview(2, 0.5, None, tiny_unet())
    written = viz.decode_png((tmp_path / "out" / "preview.png").read_bytes())
    assert (written == viz.upscale(viz.grid_uint8(preview.frames[2], nrow=2), 3)).all()
    assert written.shape == (3 * 62, 3 * 62)  # 2 x 2 pictures of 28 with 2-pixel padding, three times enlarged


def test_every_must_be_a_positive_number_of_steps():
    with pytest.raises(ValueError, match="every must be a number of steps >= 1, got 0"):
        Preview(SCHEDULE, every=0)


class Stop(Exception):
    pass


def test_in_training_it_shows_that_steps_ema_weights_even_after_an_interruption(tmp_path):
    model_cfg, data = tiny_config(image_size=8), tiny_train_data()
    cfg = tiny_train_config(tmp_path / "run", T=20)  # 6 steps, a checkpoint every 3
    preview = Preview(SCHEDULE, every=2, n=4, steps=2)

    def interrupted(step, loss, model, ema):
        preview(step, loss, model, ema)
        if step == 5:
            raise Stop  # after step 5: last.pt holds step 3
    with pytest.raises(Stop):
        train(cfg, model_cfg, progress=False, data=data, callback=interrupted)
    ckpt = train(cfg, model_cfg, resume=True, progress=False, data=data, callback=preview)
    ema, _ = checkpoint.build(ckpt)
    assert sorted(preview.frames) == [2, 4, 6]  # step 4 was drawn before the interruption and again after it
    assert torch.equal(preview.frames[6], preview.draw(ema))
    uninterrupted = Preview(SCHEDULE, every=2, n=4, steps=2)
    train(tiny_train_config(tmp_path / "whole", T=20), model_cfg, progress=False, data=data, callback=uninterrupted)
    for step in (2, 4, 6):
        assert torch.equal(preview.frames[step], uninterrupted.frames[step]), step

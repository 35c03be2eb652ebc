"""Several processes train like one: two CPU ranks (gloo) against a single process on the same global batch.

One spawn of two processes runs four distributed trainings (uninterrupted, interrupted at a checkpoint,
resumed, and one where a single rank's loss turns NaN); the tests below each check one promise on the results.
"""
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_config, tiny_train_config, tiny_train_data
from ddpm_lite import checkpoint
from ddpm_lite import training as train_module
from ddpm_lite.errors import TrainingDiverged
from ddpm_lite.parallel import distributed
from ddpm_lite.recipe import TrainConfig
from ddpm_lite.training import Batches, _draw, train

MODEL_CFG = tiny_config(image_size=8)
WORLD = 2
SPAWN_TIMEOUT_S = 240  # a hang (a rank waiting in a collective the other never joins) fails instead of blocking


tiny_data, config = tiny_train_data, tiny_train_config  # the spawned ranks call them too


class Stop(Exception):
    pass


def weights(ckpt):
    return {"model": ckpt["model"], "ema": ckpt["ema"], "history": ckpt["history"], "step": ckpt["step"]}


def _worker(rank, root, ports):
    """One rank: torchrun's environment by hand, then four trainings; what it saw goes to root/rank{rank}.pt."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank))
    root, data, seen = Path(root), tiny_data(), {"saves": [], "bars": 0, "main": set(), "shard_sizes": set()}
    real_save, real_bar, real_loss = checkpoint.save, train_module._progress_bar, train_module.diffusion_loss

    def counting_loss(model, schedule, x0, *args):
        seen["shard_sizes"].add(len(x0))
        return real_loss(model, schedule, x0, *args)

    def counting_save(payload, path):
        seen["saves"].append(payload["step"])
        return real_save(payload, path)

    def counting_bar(run):
        seen["bars"] += 1
        return real_bar(run)

    checkpoint.save, train_module._progress_bar = counting_save, counting_bar
    train_module.diffusion_loss = counting_loss

    def on_step(stop_at=None, poison_at=None):
        def callback(step, loss, model, ema):
            seen["main"].add(distributed.is_main_process())
            if step == poison_at and rank == WORLD - 1:  # only the last rank's weights turn NaN
                seen["bytes_before_nan"] = (root / "nan" / "last.pt").read_bytes()
                with torch.no_grad():
                    model.conv_out.weight.fill_(float("nan"))
            if step == stop_at:
                raise Stop
        return callback

    os.environ["MASTER_PORT"] = str(ports[0])
    seen["full"] = weights(train(config(root / "full"), MODEL_CFG, progress=True, data=data, callback=on_step()))
    os.environ["MASTER_PORT"] = str(ports[1])
    try:
        train(config(root / "cut"), MODEL_CFG, progress=False, data=data, callback=on_step(stop_at=3))
    except Stop:
        seen["cut_step"] = checkpoint.load(root / "cut" / "last.pt")["step"]
    os.environ["MASTER_PORT"] = str(ports[2])
    seen["resumed"] = weights(train(config(root / "cut"), MODEL_CFG, resume=True, progress=False, data=data))
    os.environ["MASTER_PORT"] = str(ports[3])
    try:
        train(config(root / "nan", ckpt_every=1), MODEL_CFG, progress=False, data=data, callback=on_step(poison_at=2))
    except TrainingDiverged as e:
        seen["diverged"] = str(e)
    checkpoint.save, train_module._progress_bar, train_module.diffusion_loss = real_save, real_bar, real_loss
    torch.save(seen, root / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the two ranks saw, and the folder they trained in."""
    root = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(_worker, args=(str(root), [free_port() for _ in range(4)]), nprocs=WORLD,
                                 join=False, start_method="spawn")
    deadline = time.time() + SPAWN_TIMEOUT_S
    while not context.join(timeout=5):
        if time.time() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"the {WORLD} ranks did not finish within {SPAWN_TIMEOUT_S} s (a rank left waiting?)")
    return [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], root


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The same run in one plain process."""
    root = tmp_path_factory.mktemp("single")
    return weights(train(config(root), MODEL_CFG, progress=False, data=tiny_data()))


def assert_same_weights(a, b, exact):
    for key in ("model", "ema"):
        for name, value in a[key].items():
            if exact:
                assert torch.equal(b[key][name], value), (key, name)
            else:  # summed in another order (two shard means, then their mean): equal to float rounding
                torch.testing.assert_close(b[key][name], value, rtol=1e-4, atol=1e-6, msg=f"{key} {name}")


def test_two_ranks_train_like_one_process_on_the_same_global_batch(ranks, single):
    seen, _ = ranks
    for rank in seen:
        assert rank["shard_sizes"] == {8 // WORLD}  # each rank's loss sees its half of the global batch of 8
        assert rank["full"]["step"] == single["step"] == 6
        assert_same_weights(single, rank["full"], exact=False)
        assert [row[0] for row in rank["full"]["history"]] == [row[0] for row in single["history"]] == [3, 6]
        for got, want in zip(rank["full"]["history"], single["history"]):
            assert got[1] == pytest.approx(want[1], rel=1e-5) and got[2] == want[2]  # global loss mean, lr
    assert_same_weights(seen[0]["full"], seen[1]["full"], exact=True)  # DDP keeps the ranks identical
    assert not torch.equal(single["model"]["conv_out.weight"], torch.zeros_like(single["model"]["conv_out.weight"]))


def test_only_rank_0_writes_checkpoints_and_draws_progress(ranks):
    seen, root = ranks
    assert seen[0]["saves"] == [3, 6] + [3] + [6] + [1, 2]  # full, cut, resumed, nan and seen[1]["saves"] == []
    assert seen[0]["bars"] == 1 and seen[1]["bars"] == 0
    assert seen[0]["main"] == {True} and seen[1]["main"] == {False}
    for run in ("full", "cut"):  # one checkpoint, no temporary files, the lock file gone
        assert sorted(p.name for p in (root / run).iterdir()) == ["last.pt"]
    assert checkpoint.load(root / "full" / "last.pt")["meta"]["processes"] == WORLD


def test_a_distributed_resume_continues_the_same_trajectory(ranks):
    seen, _ = ranks
    for rank in seen:
        assert rank["cut_step"] == 3 and rank["resumed"]["step"] == 6
        assert_same_weights(rank["full"], rank["resumed"], exact=True)
        assert [row[:3] for row in rank["resumed"]["history"]] == [row[:3] for row in rank["full"]["history"]]


def test_a_nan_on_one_rank_stops_every_rank_and_keeps_the_checkpoint(ranks):
    seen, root = ranks
    for rank in seen:  # without the all-reduced finiteness check, rank 0 would wait in backward forever
        assert rank["diverged"].startswith("loss became nan at step 2; stopped without saving")
    assert (root / "nan" / "last.pt").read_bytes() == seen[WORLD - 1]["bytes_before_nan"]
    assert checkpoint.load(root / "nan" / "last.pt")["step"] == 2
    assert sorted(p.name for p in (root / "nan").iterdir()) == ["last.pt"]


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("num_classes", [10, None])
def test_the_shards_of_a_step_are_the_single_process_batch(world, num_classes):
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randint(0, 256, (40, 1, 4, 4), generator=g, dtype=torch.uint8), torch.arange(40) % 10
    cfg, model_cfg, batches = TrainConfig(label_dropout=0.5), tiny_config(num_classes=num_classes), Batches(40, 8, 0)
    whole = _draw(cfg, model_cfg, batches, images, labels, 5, 50, "cpu")
    parts = [_draw(cfg, model_cfg, batches, images, labels, 5, 50, "cpu", distributed.Ranks(r, world, r))
             for r in range(world)]
    for i, full in enumerate(whole):
        if full is None:
            assert all(p[i] is None for p in parts)
        else:
            assert all(len(p[i]) == 8 // world for p in parts)
            assert torch.equal(torch.cat([p[i] for p in parts]), full)


def torchrun_env(monkeypatch, rank, world):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def test_a_batch_that_does_not_split_evenly_is_refused_before_any_work(tmp_path, monkeypatch):
    torchrun_env(monkeypatch, 0, 2)
    with pytest.raises(ValueError, match=r"^batch_size 7 is not divisible by the 2 processes.*multiple of 2$"):
        train(config(tmp_path / "run", batch_size=7), MODEL_CFG, progress=False, data=tiny_data())
    assert not (tmp_path / "run").exists()


def test_is_main_process_reads_torchrun_environment(monkeypatch):
    for name in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert distributed.is_main_process() and distributed.launched() is None
    torchrun_env(monkeypatch, 1, 2)
    assert not distributed.is_main_process() and distributed.launched() == distributed.Ranks(1, 2, 1)
    torchrun_env(monkeypatch, 0, 2)
    assert distributed.is_main_process()


def test_each_rank_uses_the_gpu_of_its_local_rank_or_the_cpu():
    ranks = distributed.Ranks(rank=5, world_size=8, local_rank=1)
    assert distributed.rank_device("cpu", ranks) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.rank_device("auto", ranks) == torch.device("cpu")
    assert distributed.rank_device("cuda", ranks) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="each process uses cuda:LOCAL_RANK"):
        distributed.rank_device("cuda:0", ranks)
    with pytest.raises(ValueError, match="runs on cuda or cpu"):
        distributed.rank_device("mps", ranks)

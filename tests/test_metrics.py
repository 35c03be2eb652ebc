"""Metrics against exact answers: closed-form Frechet distances, k-NN radii on a line, constructed histograms;
then the `evaluate` command end to end on real MNIST test digits written as a .npy file."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import missing
from ddpm_lite.cli import evaluate_command as evaluate_cmd
from ddpm_lite.evaluation import metrics
from ddpm_lite.cli import main
from ddpm_lite.data import DataNotFoundError, load_images


def random_psd(d, seed):
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, -1.0, 2.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum()  # 5 + (1 + 1 + 6.25)
    got = metrics.frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2))
    assert got == pytest.approx(float(expected), abs=1e-9)


def test_frechet_distance_of_non_commuting_2x2_covariances():
    # For 2x2 PSD A, B: tr (AB)^(1/2) = sqrt(tr(AB) + 2 sqrt(det A det B)), since sqrt(AB) has eigenvalues sqrt(l_i).
    a, b = random_psd(2, 0), random_psd(2, 1)
    assert not torch.allclose(a @ b, b @ a)
    cross = math.sqrt(float(torch.trace(a @ b) + 2 * torch.sqrt(torch.det(a) * torch.det(b))))
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    expected = float(((mu1 - mu2) ** 2).sum() + a.trace() + b.trace()) - 2 * cross
    assert metrics.frechet_distance(mu1, a, mu2, b) == pytest.approx(expected, rel=1e-10)
    assert metrics.frechet_distance(mu2, b, mu1, a) == pytest.approx(expected, rel=1e-10)  # symmetric


def test_frechet_distance_with_identity_is_sum_of_sqrt_eigenvalues():
    s = random_psd(16, 2)
    eig = torch.linalg.eigvalsh(s)
    expected = float(16 + eig.sum() - 2 * eig.sqrt().sum())  # tr(I) + tr(S) - 2 tr(S^(1/2))
    got = metrics.frechet_distance(torch.zeros(16), torch.eye(16), torch.zeros(16), s)
    assert got == pytest.approx(expected, rel=1e-9)


def test_sqrtm_psd_squares_back_and_tolerates_rank_deficiency():
    s = random_psd(8, 3)
    r = metrics.sqrtm_psd(s)
    assert torch.allclose(r @ r, s, atol=1e-10)
    v = torch.randn(8, 1, dtype=torch.float64)
    assert torch.allclose(metrics.sqrtm_psd(v @ v.T) @ metrics.sqrtm_psd(v @ v.T), v @ v.T, atol=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    f = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
    assert abs(metrics.fid(f, f)) < 1e-6
    shift = torch.zeros(32)
    shift[0] = 3.0
    assert metrics.fid(f, f + shift) == pytest.approx(9.0, abs=1e-6)  # same covariance: |mu1 - mu2|^2


def test_gaussian_matches_numpy_unbiased_covariance():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    mu, cov = metrics.gaussian(f)
    assert np.allclose(cov.numpy(), np.cov(f.double().numpy(), rowvar=False))
    assert np.allclose(mu.numpy(), f.double().numpy().mean(0))


def test_knn_radii_on_a_line_and_chunking():
    x = torch.arange(10.0)[:, None]  # points 0..9 on a line
    r = metrics.knn_radii(x, k=3)
    assert r.tolist() == [3, 2, 2, 2, 2, 2, 2, 2, 2, 3]  # third-nearest other point: ends 3 away, inside 2
    y = torch.randn(37, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(metrics.knn_radii(y, chunk=7), metrics.knn_radii(y, chunk=1000))
    with pytest.raises(ValueError, match="more than k=3"):
        metrics.knn_radii(x[:3])


def test_precision_recall_identical_disjoint_and_half():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=g)
    assert metrics.precision_recall(real, real.clone()) == (1.0, 1.0)
    far = torch.randn(200, 8, generator=g) + 100.0
    assert metrics.precision_recall(real, far) == (0.0, 0.0)
    half = torch.cat([real[:100], far[:100]])  # half copies of real points (distance 0), half far away
    precision, _ = metrics.precision_recall(real, half)
    assert precision == 0.5
    assert metrics.share_inside(far, real, metrics.knn_radii(real), chunk=13) == 0.0


def test_class_balance_confident_share_and_conditional_accuracy():
    assert metrics.class_balance(torch.arange(100) % 10) == pytest.approx(1.0)
    assert metrics.class_balance(torch.full((50,), 3)) == 0.0
    assert metrics.class_balance(torch.tensor([0, 1] * 20)) == pytest.approx(math.log(2) / math.log(10))
    probs = torch.full((4, 10), 0.01)
    probs[0, 0], probs[1, 1], probs[2, 2], probs[3, 3] = 0.91, 0.9, 0.89, 0.5
    assert metrics.confident_share(probs) == 0.5  # 0.91 and 0.9 reach the threshold, 0.89 and 0.5 do not
    assert metrics.conditional_accuracy(probs, torch.tensor([0, 1, 5, 3])) == 0.75


class FlatClassifier:
    """Features are the pixels themselves, so what embed fed the classifier can be read back."""

    def features(self, x):
        return x.flatten(1)

    def logits_head(self, f):
        return f[:, :10]


def test_embed_takes_uint8_pixels_as_a_npy_file_holds_them_and_model_range_alike():
    u = np.zeros((3, 28, 28), np.uint8)
    u[0, 0, 0] = 255
    from_pixels, _ = metrics.embed(FlatClassifier(), u)
    from_floats, _ = metrics.embed(FlatClassifier(), torch.as_tensor(u)[:, None].float() / 127.5 - 1)
    assert torch.equal(from_pixels, from_floats)
    assert from_pixels[0, 0] == 1.0 and from_pixels[1].max() == -1.0
    with pytest.raises(ValueError, match="uint8"):
        metrics.embed(FlatClassifier(), np.zeros((2, 28, 28), np.int64))


def cycling_test_digits(n):
    """n MNIST test digits whose labels cycle 0..9, as `sample --label all` orders them."""
    try:
        images, labels = load_images("mnist", train=False, download=False)
    except DataNotFoundError as e:
        missing(f"MNIST not available: {e}")
    picks = [int(torch.nonzero(labels == i % 10)[i // 10]) for i in range(n)]
    return images[picks, 0].numpy()  # (n, 28, 28) uint8


def test_evaluate_npy_end_to_end(tmp_path, capsys):
    np.save(tmp_path / "digits.npy", cycling_test_digits(64))
    rc = main(["evaluate", "--npy", str(tmp_path / "digits.npy"), "--conditional", "--json", str(tmp_path / "m.json"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    for label in ("FID (classifier features)", "precision (k=3)", "recall (k=3)", "confident share (p_max >= 0.9)",
                  "class balance (H / log 10)", "conditional accuracy", "real MNIST"):
        assert label in out
    result = json.loads((tmp_path / "m.json").read_text())
    keys = {"n", "fid", "precision", "recall", "confident", "class_balance", "conditional_accuracy"}
    assert set(result["model"]) == keys and set(result["real"]) == keys
    assert result["model"]["n"] == result["real"]["n"] == 64
    assert result["model"]["conditional_accuracy"] >= 0.95  # real digits in label order: the classifier agrees
    assert result["model"]["class_balance"] > 0.99  # 6 or 7 of each digit
    assert 0 <= result["model"]["precision"] <= 1
    # real test digits score as a real set does (same n), far from zero: FID of finite sets is biased upward
    assert result["real"]["fid"] > 1 and result["model"]["fid"] == pytest.approx(result["real"]["fid"], rel=0.25)
    assert result["settings"]["confident_threshold"] == 0.9


def run_cli(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["--npy", "{d}/missing.npy"], "does not exist"),
    (np.zeros((12, 32, 32), np.uint8), ["--npy", "{d}/x.npy"], "expected uint8 (N, 28, 28)"),
    (np.zeros((12, 28, 28), np.float32), ["--npy", "{d}/x.npy"], "float32"),
    (np.zeros((12, 28, 28), np.uint8), ["--npy", "{d}/x.npy", "--n", "13"], "more than the 12 images"),
    (np.zeros((5, 28, 28), np.uint8), ["--npy", "{d}/x.npy"], "at least 10 images"),
    (np.zeros((12, 28, 28), np.uint8), ["--npy", "{d}/x.npy", "--checkpoint", "c.pt"], "not both"),
    (None, ["--sampler", "euler"], "unknown sampler 'euler'; choose one of ddpm, ddim, dpm++"),
    (None, ["--guidance", "2", "--label", "none"], "--guidance needs --label K, all or random"),
    (None, ["--label", "7"], "evaluate --label takes all, random or none"),
    (None, ["--conditional", "--label", "random"], "--conditional means --label all"),
    (np.zeros((12, 28, 28), np.uint8), ["--npy", "{d}/x.npy", "--label", "random"], "carry no labels"),
])
def test_evaluate_rejects_bad_input(tmp_path, capsys, setup, argv, message):
    if setup is not None:
        np.save(tmp_path / "x.npy", setup)
    try:
        rc, err = run_cli(["evaluate", *[a.format(d=tmp_path) for a in argv]], capsys)
    except SystemExit as e:  # refused by the parser
        rc, err = e.code, capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_evaluate_rejects_non_positive_n(capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--n", "0"])
    assert e.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


def test_evaluate_checks_sampling_flags_against_the_checkpoint(tiny_ckpts, capsys):
    uncond = tiny_ckpts.uncond
    for flag in (["--conditional"], ["--label", "random"]):
        rc, err = run_cli(["evaluate", "--checkpoint", str(uncond), *flag], capsys)
        assert rc == 2 and "--label given but this checkpoint is unconditional" in err
    rc, err = run_cli(["evaluate", "--checkpoint", str(uncond), "--steps", "21"], capsys)
    assert rc == 2 and "between 1 and T=20" in err


def test_evaluate_scores_the_digits_sample_npy_writes(tiny_ckpts, tmp_path, capsys, monkeypatch):
    """The same flags and seed: `evaluate` generates exactly the images `sample --npy` writes (batches of 3)."""
    seen = {}
    monkeypatch.setattr(evaluate_cmd, "evaluate", lambda images, labels, *a: seen.update(images=images, labels=labels)
                        or {"model": {"n": len(images)}, "real": {}})
    flags = ["--checkpoint", str(tiny_ckpts.cond), "--n", "11", "--seed", "5", "--steps", "3", "--eta", "0.5",
             "--guidance", "1", "--label", "random", "--batch-size", "3", "--no-progress"]
    assert main(["evaluate", *flags, "--json", "-"]) == 0
    assert main(["sample", *flags, "--out", str(tmp_path / "s.png"), "--npy", str(tmp_path / "s.npy")]) == 0
    written = torch.from_numpy(np.load(tmp_path / "s.npy"))
    assert seen["images"].shape == (11, 1, 28, 28) and torch.equal(seen["images"][:, 0], written)
    assert torch.equal(seen["labels"], torch.randint(0, 10, (11,), generator=torch.Generator().manual_seed(5)))


def test_evaluate_records_the_settings_it_sampled_with(tiny_ckpts, tmp_path, capsys, monkeypatch):
    """Flags left out take the checkpoint's recommended settings; the JSON records what was used."""
    from ddpm_lite import checkpoint
    from ddpm_lite.samplers import SamplerSettings
    ckpt = tmp_path / "recommending.pt"
    checkpoint.export_ema(tiny_ckpts.cond, ckpt, sampling=SamplerSettings(steps=2, eta=0.7, eps_scaling=0.98,
                                                                             labels="random", precision="bf16"))
    monkeypatch.setattr(evaluate_cmd, "evaluate", lambda images, *a: {"model": {"n": len(images)}, "real": {}})
    argv = ["evaluate", "--checkpoint", str(ckpt), "--n", "10", "--json", "-", "--no-progress"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)["settings"]
    assert (s["sampler"], s["steps"], s["eta"], s["eps_scaling"], s["precision"], s["labels"]) == \
        ("ddim", 2, 0.7, 0.98, "bf16", "random")
    assert main([*argv, "--eta", "0", "--label", "none", "--precision", "fp32"]) == 0
    s = json.loads(capsys.readouterr().out)["settings"]
    assert (s["steps"], s["eta"], s["eps_scaling"], s["labels"], s["conditional"]) == (2, 0.0, 0.98, "none", False)


def test_evaluate_json_to_stdout_replaces_the_table(tmp_path, capsys, monkeypatch):
    row = {"n": 12, "fid": 1.5, "precision": 0.5, "recall": 0.25, "confident": 1.0, "class_balance": 0.0,
           "conditional_accuracy": None}
    seen = {}

    def fake_evaluate(images, labels, classifier, seed, data_root, batch_size):  # skip the 10k reference pass
        seen.update(shape=tuple(images.shape), labels=labels)
        return {"model": row, "real": row}
    monkeypatch.setattr(evaluate_cmd, "evaluate", fake_evaluate)
    np.save(tmp_path / "x.npy", np.zeros((12, 28, 28), np.uint8))
    assert main(["evaluate", "--npy", str(tmp_path / "x.npy"), "--json", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == row and result["settings"]["source"] == str(tmp_path / "x.npy")
    assert "sampler" not in result["settings"]  # nothing was generated
    assert seen == {"shape": (12, 28, 28), "labels": None}


@pytest.mark.parametrize("flags, expected", [
    (["--label", "random"], "random"), (["--label", "all"], "all"), (["--conditional"], "all"), ([], None)])
def test_evaluate_labels_are_the_ones_sample_draws(tiny_ckpts, capsys, monkeypatch, flags, expected):
    """--label random scores the very digits `sample --label random` draws under the same seed and count."""
    from ddpm_lite.samplers import resolve_labels
    seen = {}

    def fake_evaluate(images, labels, classifier, seed, data_root, batch_size):
        seen["labels"] = labels
        row = {"n": len(images), "fid": 0.0, "precision": 1.0, "recall": 1.0, "confident": 1.0,
               "class_balance": 1.0, "conditional_accuracy": None}
        return {"model": row, "real": row}
    monkeypatch.setattr(evaluate_cmd, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluate_cmd, "generate", lambda model, schedule, labels, args: torch.zeros(30, 1, 28, 28))
    argv = ["evaluate", "--checkpoint", str(tiny_ckpts.cond), "--n", "30", "--seed", "4", "--steps", "2",
            "--json", "-", *flags]
    assert main(argv) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["labels"] == expected and settings["conditional"] == (expected is not None)
    if expected is None:
        assert seen["labels"] is None
        return
    assert torch.equal(seen["labels"], resolve_labels(expected, 30, 10, seed=4))
    if expected == "random":
        assert not torch.equal(seen["labels"], torch.arange(30) % 10)


def test_evaluate_samples_on_the_device_asked_for_and_records_it(tiny_ckpts, capsys, monkeypatch):
    seen = {}

    def fake_generate(model, schedule, labels, args):
        seen["device"] = next(model.parameters()).device.type
        return torch.zeros(args.n, 1, 28, 28, dtype=torch.uint8)
    monkeypatch.setattr(evaluate_cmd, "generate", fake_generate)
    monkeypatch.setattr(evaluate_cmd, "evaluate", lambda images, *a: {"model": {"n": len(images)}, "real": {}})
    argv = ["evaluate", "--checkpoint", str(tiny_ckpts.cond), "--n", "12", "--steps", "2", "--json", "-"]
    assert main([*argv, "--device", "meta"]) == 0
    assert seen["device"] == "meta" and json.loads(capsys.readouterr().out)["settings"]["device"] == "meta"
    assert main(argv) == 0  # the default samples on the CPU
    assert seen["device"] == "cpu" and json.loads(capsys.readouterr().out)["settings"]["device"] == "cpu"


def test_evaluate_records_eps_scaling_and_refuses_a_bad_one(tiny_ckpts, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(evaluate_cmd, "generate", lambda model, schedule, labels, args: seen.update(
        lam=model.sampling.eps_scaling) or torch.zeros(args.n, 1, 28, 28, dtype=torch.uint8))
    monkeypatch.setattr(evaluate_cmd, "evaluate", lambda images, *a: {"model": {"n": len(images)}, "real": {}})
    argv = ["evaluate", "--checkpoint", str(tiny_ckpts.cond), "--n", "12", "--steps", "2", "--json", "-"]
    for flags, lam in (([], 1.0), (["--eps-scaling", "0.98"], 0.98)):
        assert main([*argv, *flags]) == 0
        assert seen["lam"] == lam and json.loads(capsys.readouterr().out)["settings"]["eps_scaling"] == lam
    with pytest.raises(SystemExit) as e:
        main([*argv, "--eps-scaling", "0"])
    assert e.value.code == 2 and "argument --eps-scaling: must be a positive number, got 0" in capsys.readouterr().err

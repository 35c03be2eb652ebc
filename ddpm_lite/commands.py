"""What each command of the command line does, after cli.py has parsed and range-checked the flags."""
from __future__ import annotations


import torch

from . import checkpoint
from .cli import UsageError, check_train_args, train_config_from


def run(args) -> int:
    return HANDLERS[args.command](args)


def cmd_train(args) -> int:
    from .data import load_images
    from .train import train
    check_train_args(args)
    colour = args.dataset == "cifar10"
    data = load_images(args.dataset, args.data_root, train=True, image_size=args.image_size or (32 if colour else 28),
                       channels=args.channels or (3 if colour else 1))
    cfg, model_cfg = train_config_from(args, len(data[0]))
    if data[0].shape[1:] != (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size):
        raise UsageError(f"data has shape {tuple(data[0].shape[1:])} per image but the model expects "
                         f"({model_cfg.in_channels}, {model_cfg.image_size}, {model_cfg.image_size}); "
                         f"set --channels and --image-size")
    ckpt = train(cfg, model_cfg, resume=args.resume, progress=not args.no_progress, data=data)
    print(f"trained {ckpt['step']} steps; final loss {ckpt['history'][-1][1]:.4f}; checkpoint {cfg.out_dir}/last.pt")
    if args.export:
        print(f"exported EMA weights to {checkpoint.export_ema(f'{cfg.out_dir}/last.pt', args.export)}")
    return 0


def parse_labels(label, n: int, model_cfg, seed: int = 0) -> torch.Tensor | None:
    """--label K -> (n,) all K; all -> rows of 0..9; random -> each drawn uniformly (seeded); None -> no label.

    "random" samples p(x) = sum_y p(y) p(x | y) through the conditional model: unconditional digits that do
    not depend on how well the "no label" class was learnt (MNIST's ten classes are close to equally common)."""
    if label is None:
        return None
    if not model_cfg.get("num_classes"):
        raise UsageError("--label given but this checkpoint is unconditional (trained without labels)")
    k = model_cfg["num_classes"]
    if label == "all":
        return torch.arange(n) % k
    if label == "random":
        return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))  # its own stream
    try:
        value = int(label)
    except ValueError:
        raise UsageError(f"--label must be an integer 0..{k - 1}, 'all' or 'random', got {label!r}") from None
    if not 0 <= value < k:
        raise UsageError(f"--label must be between 0 and {k - 1}, got {value}")
    return torch.full((n,), value)


def check_sampler(name: str) -> None:
    """Checked before any checkpoint is read, so a typo costs nothing."""
    from .samplers import SAMPLERS
    if name not in SAMPLERS:
        raise UsageError(f"unknown --sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def check_eta(args) -> None:
    if args.eta and args.sampler not in ("ddim", "dpm++"):
        raise UsageError(f"--eta (the sampler's noise) applies to --sampler ddim or dpm++ only, not {args.sampler}")


def check_sample_args(args, ckpt) -> torch.Tensor | None:
    """Steps, labels and guidance against the checkpoint (call check_sampler first)."""
    check_eta(args)
    T = ckpt["schedule"]["T"]
    if args.steps is not None and not 1 <= args.steps <= T:
        raise UsageError(f"--steps must be between 1 and T={T}, got {args.steps}")
    labels = parse_labels(args.label, args.n, ckpt["model_config"], args.seed)
    if args.guidance and labels is None:
        raise UsageError("--guidance needs --label K, all or random (guidance steers towards a class)")
    return labels


def cmd_sample(args) -> int:
    from .samplers import sample
    from .viz import save_gif, save_grid, to_npy
    check_sampler(args.sampler)
    ckpt = checkpoint.load(args.checkpoint or checkpoint.default_checkpoint())
    labels = check_sample_args(args, ckpt)
    model, schedule = checkpoint.build(ckpt, device=args.device)
    result = sample(model, schedule, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                    variance=args.variance, labels=labels, guidance=args.guidance, precision=args.precision,
                    spacing=args.spacing, eps_scaling=args.eps_scaling, trajectory=bool(args.gif),
                    generator=torch.Generator().manual_seed(args.seed), progress=not args.no_progress)
    x, traj = result if args.gif else (result, None)
    nrow = args.nrow or (10 if args.label == "all" else 8)
    print(f"wrote {save_grid(x, args.out, nrow=nrow)}")
    if traj is not None:
        frames = torch.cat([traj.xt, x[None]])  # x_t at every step, then the final sample
        print(f"wrote {save_gif(frames[_gif_frames(len(frames))], args.gif, nrow=nrow)}")
    if args.npy:
        import numpy as np
        np.save(args.npy, to_npy(x))
        print(f"wrote {args.npy}")
    return 0


def _gif_frames(n: int, most: int = 60) -> list:
    """At most `most` frames, always keeping the first and the last."""
    if n <= most:
        return list(range(n))
    return torch.linspace(0, n - 1, most).round().long().unique().tolist()


def cmd_export(args) -> int:
    print(f"wrote {checkpoint.export_ema(args.src, args.dst)}")
    return 0


HANDLERS = {"train": cmd_train, "sample": cmd_sample, "export": cmd_export}

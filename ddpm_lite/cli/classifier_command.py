"""`python -m ddpm_lite train-classifier`: train the MNIST classifier that `evaluate` measures samples with."""
from __future__ import annotations

from ..checkpoint import save
from ..evaluation.classifier import train_classifier
from .args import Help, number, positive_float, positive_int

NAME, HELP = "train-classifier", "train the MNIST classifier that `evaluate` measures samples with"


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak of the one-cycle learning rate")
    p.add_argument("--max-shift", type=number(float, 0, 14), default=2.0,
                   help="augmentation: random shifts up to this many pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $DDPM_LITE_DATA)")
    p.add_argument("--out", default="mnist_classifier.pt", help="where to write it")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    ckpt = train_classifier(args.epochs, args.batch_size, args.lr, args.seed, args.max_shift, args.data_root,
                            progress=not args.no_progress)
    ckpt["command"] = (f"python -m ddpm_lite train-classifier --epochs {args.epochs} --batch-size {args.batch_size} "
                       f"--lr {args.lr} --max-shift {args.max_shift} --seed {args.seed} --out {args.out}")
    save(ckpt, args.out)
    print(f"test accuracy {ckpt['test_accuracy']:.4f} on the 10,000 MNIST test digits after "
          f"{ckpt['train']['seconds']:.0f} s; wrote {args.out}")
    return 0

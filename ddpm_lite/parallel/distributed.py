"""Processes around one training run: the ranks of a torchrun job, and the lock that keeps other runs out.

Under `torchrun --nproc_per_node=N -m ddpm_lite train ...` every process (rank) runs train(). Each rank draws
the whole global batch's t, eps and dropped labels from the step's generator and keeps its 1/N slice, so the
global batch is the single-process one; DistributedDataParallel averages gradients over ranks, and with equal
slices the mean of per-rank means is the global mean, so the gradient is the single-process gradient too.
Rank 0 alone logs, draws progress bars and writes files. Without torchrun's environment (WORLD_SIZE, RANK,
LOCAL_RANK) nothing here communicates. training.py imports this module, never the reverse.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import RunFolderError

try:
    import fcntl
except ImportError:  # Windows: no flock, so the run folder is not locked (one run per folder is up to you)
    fcntl = None

TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun job: rank of world_size; local_rank picks its GPU on the node."""
    rank: int
    world_size: int
    local_rank: int


def launched() -> Ranks | None:
    """The Ranks that torchrun's environment describes, or None for a plain process."""
    if not all(name in os.environ for name in TORCHRUN_ENV):
        return None
    return Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


def is_main(ranks: Ranks | None) -> bool:
    return ranks is None or ranks.rank == 0


def is_main_process() -> bool:
    """True in a plain process and on rank 0 of a torchrun job: the one process that prints and writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return is_main(launched())


def check_batch_size(batch_size: int, ranks: Ranks | None) -> None:
    """Equal shards, so that the mean of per-rank means is the global batch mean."""
    if ranks is not None and batch_size % ranks.world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {ranks.world_size} processes; each takes "
                         f"an equal share of the global batch, so pass a multiple of {ranks.world_size}")


def shard(ranks: Ranks | None, n: int) -> slice:
    """This rank's equal slice of a global batch of n."""
    if ranks is None:
        return slice(None)
    size = n // ranks.world_size
    return slice(ranks.rank * size, (ranks.rank + 1) * size)


def rank_device(name: str, ranks: Ranks) -> torch.device:
    """With CUDA each rank uses cuda:LOCAL_RANK (NCCL); otherwise every rank runs on the CPU (gloo)."""
    if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()):
        if torch.device(name).index not in (None, ranks.local_rank):
            raise ValueError(f"device {name!r}: under torchrun each process uses cuda:LOCAL_RANK; pass cuda or auto")
        if torch.cuda.is_available() and ranks.local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {ranks.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"start at most that many processes per node (--nproc_per_node)")
        return torch.device("cuda", ranks.local_rank)
    if name not in ("auto", "cpu"):
        raise ValueError(f"device {name!r}: training on several processes runs on cuda or cpu")
    return torch.device("cpu")


@contextmanager
def session(ranks: Ranks | None, device: torch.device):
    """The process group for one run: started here (NCCL on CUDA, gloo on CPU) and destroyed at the end.

    A group the caller already started is used and left alone."""
    owned = ranks is not None and not (dist.is_available() and dist.is_initialized())
    if owned:
        if not dist.is_available():
            raise RuntimeError("this PyTorch build has no torch.distributed; run one process (without torchrun)")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank,
                                world_size=ranks.world_size)
    try:
        yield
    finally:
        if owned:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks | None, device: torch.device) -> torch.nn.Module:
    """The module to run forward and backward through: DDP averages the gradients over ranks."""
    if ranks is None:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(x: torch.Tensor, ranks: Ranks | None) -> torch.Tensor:
    """Mean of a per-rank value over ranks; for per-shard means of equal shards, the global batch mean."""
    if ranks is None:
        return x
    x = x.detach().clone()
    dist.all_reduce(x)  # sum
    return x / ranks.world_size


def on_main(ranks: Ranks | None, fn, *args, share: bool = False):
    """fn(*args) run by rank 0 alone; its exception is raised on every rank, so all ranks stop together.

    Returns fn's result on rank 0 and, with share=True, on every rank (else None there)."""
    if ranks is None:
        return fn(*args)
    payload = [None]
    if ranks.rank == 0:
        try:
            result, error = fn(*args), None
        except Exception as e:  # handed to the other ranks, then raised everywhere
            result, error = None, e
        payload = [(result if share else None, error)]
    dist.broadcast_object_list(payload, src=0)
    if ranks.rank != 0:
        result, error = payload[0]
    if error is not None:
        raise error
    return result


def acquire_run_folder(out_dir) -> tuple[int, Path]:
    """Create out_dir if needed and hold out_dir/.lock; (file descriptor, lock path) for release_run_folder.

    flock is released by the kernel when the process ends, even on SIGKILL, so a crash never leaves the folder
    locked. Raises RunFolderError when the folder cannot be written or another run holds it."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        path = out_dir / LOCK_NAME
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            if fcntl is None or _lock(fd, out_dir, path):
                return fd, path
            os.close(fd)  # the holder removed the file between our open and our lock: lock the new one
    except OSError as e:
        raise RunFolderError(f"cannot write to run folder {out_dir}: {e.strerror or e}") from None


def _lock(fd: int, out_dir: Path, path: Path) -> bool:
    """Lock fd; False when path no longer names the locked file (its holder released it meanwhile)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunFolderError(f"another training run is using run folder {out_dir} (it holds {path}); wait for it "
                             f"to finish or choose another --out") from None
    except OSError:  # a file system without locks (some network mounts): go on unlocked
        return True
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def release_run_folder(fd: int, path: Path) -> None:
    """Remove the lock file while still holding it, then let go (a waiting opener re-checks the inode)."""
    path.unlink(missing_ok=True)
    os.close(fd)


@contextmanager
def run_folder(out_dir, ranks: Ranks | None):
    """Rank 0 holds out_dir/.lock for the run; a folder it cannot write or lock stops every rank."""
    held = on_main(ranks, acquire_run_folder, out_dir)
    try:
        yield
    finally:
        if held is not None:
            release_run_folder(*held)

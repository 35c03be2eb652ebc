"""ddpm-lite: a small, correct, tested DDPM (Ho et al. 2020) for MNIST, with DDIM and classifier-free guidance."""
from .checkpoint import load_model
from .data import load_images, to_model_range, to_uint8, to_unit
from .diffusion import eps_from_x0, loss, q_posterior, q_sample, q_step, x0_from_eps
from .editing import inpaint, sdedit
from .errors import CheckpointError, DataNotFoundError, TrainingDiverged, UsageError
from .samplers import (SamplerSettings, Trajectory, ddim_step, ddpm_step, resolve_labels, reverse_process, sample,
                       sample_trajectory, timestep_pairs)
from .schedule import Schedule, gather
from .recipe import TrainConfig
from .training import train
from .unet import UNet, UNetConfig, count_parameters

__version__ = "0.1.0"
__all__ = [
    "CheckpointError", "DataNotFoundError", "SamplerSettings", "Schedule", "TrainConfig", "Trajectory",
    "TrainingDiverged", "UNet", "UNetConfig", "UsageError", "count_parameters", "ddim_step", "ddpm_step",
    "eps_from_x0", "gather", "inpaint", "load_images", "load_model", "loss", "q_posterior", "q_sample", "q_step",
    "resolve_labels", "reverse_process", "sample", "sample_trajectory", "sdedit", "timestep_pairs", "to_model_range",
    "to_uint8", "to_unit", "train", "x0_from_eps",
]

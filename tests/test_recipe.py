"""The recipe's conversions: the network shaped for the data, epochs to steps and back."""
import pytest
import torch

from ddpm_lite import recipe
from ddpm_lite.unet import UNetConfig


def test_the_network_takes_channels_size_and_classes_from_the_data():
    grey = recipe.model_config_for(torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 9, 3, 3, 1]))
    assert grey == UNetConfig(in_channels=1, image_size=28, num_classes=10)
    colour = recipe.model_config_for(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([2, 0]),
                                     base_channels=16)
    assert colour == UNetConfig(in_channels=3, image_size=32, num_classes=3, base_channels=16)
    one_class = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    assert recipe.model_config_for(one_class, torch.zeros(4, dtype=torch.long)).num_classes is None
    assert recipe.model_config_for(one_class).num_classes is None


def test_pictures_that_are_not_square_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"pictures must be square, got 28x32; .*image_size="):
        recipe.model_config_for(torch.zeros(1, 1, 28, 32))


@pytest.mark.parametrize("epochs, n, batch, steps", [(2, 60_000, 128, 938), (1, 60_000, 128, 469), (0.5, 1000, 100, 5),
                                                     (1, 1001, 100, 11), (1, 100, 128, 1), (1e-9, 100, 10, 1)])
def test_epochs_to_steps_rounds_up(epochs, n, batch, steps):
    assert recipe.steps_for_epochs(epochs, n, batch) == steps


@pytest.mark.parametrize("steps, n, batch", [(938, 60_000, 128), (5, 1000, 100), (1, 100, 128)])
def test_epochs_of_inverts_steps_for_epochs_up_to_its_rounding(steps, n, batch):
    epochs = recipe.epochs_of(steps, n, batch)
    assert recipe.steps_for_epochs(epochs, n, batch) == steps

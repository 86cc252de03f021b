"""The PyTorch bridge: one call converts an MLP; its linear layers then run on tiles."""

import importlib
import os

import numpy as np
import pytest

import memxbar
from memxbar.mapping import Mapping


def optional(module):
    if os.environ.get("MEMXBAR_REQUIRE_TORCH"):  # CI installs torch: there a missing torch fails
        return importlib.import_module(module)
    return pytest.importorskip(module, reason="the optional extra memxbar[torch] is not installed")


torch = optional("torch")
mtorch = optional("memxbar.torch")
nn = torch.nn


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.ReLU(), nn.Linear(20, 7))


def test_convert_runs_the_linear_layers_on_the_device():
    net = mlp()
    x = torch.rand(9, 3, 16)
    with memxbar.open("model://") as dev:
        analog, mapping = mtorch.convert(net, dev, memxbar.PCM(), seed=4)
        assert [type(m).__name__ for m in analog] == ["Flatten", "AnalogLinear", "ReLU", "AnalogLinear"]
        assert isinstance(net[1], nn.Linear)  # the original is untouched
        y = analog(x).detach()  # the tile output carries the float product's gradient
        assert y.dtype == torch.float32 and y.shape == (9, 7)
        # the same layers mapped by hand with the same seed give the same numbers
        with memxbar.open("model://") as twin:
            by_hand = Mapping(twin, memxbar.PCM(), seed=4)
            layers = [by_hand.add(lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy())
                      for lin in (net[1], net[3])]
            by_hand.program()
            flat = x.reshape(9, 48).double().numpy()
            hidden = np.maximum(layers[0](flat).astype(np.float32), 0)  # torch keeps float32 between layers
            expected = layers[1](hidden.astype(np.float64))
        assert np.array_equal(y.numpy(), expected.astype(np.float32))
        exact = net(x).detach()
        assert (y - exact).abs().max() < 0.2 * exact.abs().max()
        mapping.drift(86400.0)
        assert not torch.equal(analog(x), y)


def test_unsupported_layers_are_named():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 2))
    with memxbar.open("model://") as dev:
        with pytest.raises(ValueError, match=r"layer 0 \(Conv1d\) has weights that memxbar cannot map"):
            mtorch.convert(net, dev)
        analog, _ = mtorch.convert(net, dev, keep_digital=(nn.Conv1d,))
        assert analog(torch.rand(1, 1, 4)).shape == (1, 2)
        with pytest.raises(ValueError, match=r"no nn\.Linear"):
            mtorch.convert(nn.Sequential(nn.ReLU()), dev)
        with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
            mtorch.convert(lambda x: x, dev)

"""PyTorch bridge: ``memxbar.torch.convert(model, device)`` runs a model's linear layers on tiles.

Every ``nn.Linear`` of a copy of the model becomes an :class:`AnalogLinear` module whose
matrix-vector products run on the device through one :class:`memxbar.mapping.Mapping`; the
rest of the model (activations, reshapes) stays in PyTorch. Inference only: the analog
layers carry no gradient. Needs the optional extra: ``pip install 'memxbar[torch]'``.
"""

import copy

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the installation
    raise ImportError("memxbar.torch needs PyTorch: pip install 'memxbar[torch]'") from None

from .mapping import Mapping

__all__ = ["DIGITAL", "AnalogLinear", "convert"]

# Layers without weights of their own, or whose weights are elementwise (no matrix to map),
# which the converted model keeps computing in PyTorch.
DIGITAL = (nn.ReLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Unflatten,
           nn.Dropout, nn.Identity, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.LeakyReLU, nn.SiLU)


class AnalogLinear(nn.Module):
    """An ``nn.Linear`` whose product runs on crossbar tiles (``layer`` is the mapped matrix)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.in_features, self.out_features = layer.shape[1], layer.shape[0]

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input of shape {tuple(x.shape)} does not match in_features={self.in_features}")
        y = self.layer(x.detach().cpu().to(torch.float64).numpy())
        return torch.from_numpy(np.ascontiguousarray(y)).to(dtype=x.dtype, device=x.device)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, analog"


def convert(model, device, device_model=None, *, seed=0, compensation=None, keep_digital=(), **options):
    """A copy of ``model`` with every ``nn.Linear`` on ``device``, programmed; returns ``(copy, mapping)``.

    ``device_model`` is the memristor model (e.g. ``memxbar.PCM()``; ``None`` keeps the tiles as
    they are), ``seed`` the noise seed, ``compensation`` the drift compensation of every layer
    (see :data:`memxbar.mapping.COMPENSATIONS`); ``options`` go to :class:`Mapping`
    (``read_noise``, ``reprogram``, ``bound_retries``). Modules with weights that are neither
    ``nn.Linear`` nor listed in ``keep_digital`` raise ``ValueError``: a convolution silently
    left in floats would make the accuracy figures lie. ``mapping.drift(t)`` ages the device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    keep = tuple(keep_digital) + DIGITAL
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if own and not isinstance(module, (nn.Linear, *keep)):
            raise ValueError(f"layer {name or '(the model)'} ({type(module).__name__}) has weights that "
                             f"memxbar cannot map: only nn.Linear runs on tiles; pass "
                             f"keep_digital=(nn.{type(module).__name__},) to leave it in PyTorch")
    if not any(isinstance(module, nn.Linear) for module in model.modules()):
        raise ValueError("the model has no nn.Linear layer to map onto tiles")
    analog = copy.deepcopy(model)
    mapping = Mapping(device, device_model, seed=seed, **options)
    for parent in list(analog.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, child_name, _analog(mapping, child, compensation))
    if isinstance(analog, nn.Linear):
        analog = _analog(mapping, analog, compensation)
    mapping.program()
    return analog.eval(), mapping


def _analog(mapping, linear, compensation):
    def array(tensor):
        return tensor.detach().cpu().to(torch.float64).numpy()

    bias = None if linear.bias is None else array(linear.bias)
    return AnalogLinear(mapping.add(array(linear.weight), bias, compensation))

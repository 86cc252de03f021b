"""What a sweep evaluates: a trained float model, its data and its metric, as a :class:`Network`.

A network is three functions. ``load()`` returns the payload, ``(float model, data)``: it
runs once per sweep on the client, and the payload is shipped to every worker once.
``program(payload, device, device_model, seed, read_noise)`` maps the float model onto a
device, programs it and returns ``(analog, mapping)``; ``drift`` and ``compensate`` age it and
switch its drift compensation through the analog model's own verbs. ``evaluate(analog, data)``
returns the metric, a float or a dict of floats. Networks are found by name (:data:`NETWORKS`), as an
importable ``module:function`` returning a :class:`Network`, or built from the user's own
model factory and metric with :func:`network_from`.

The float model a network loads may be a list of ``(W, b)`` pairs (a ReLU MLP, weights shaped
``(out, in)`` like ``nn.Linear``), a ``torch.nn.Module`` (its ``nn.Linear``, ``nn.Conv1d`` and
``nn.Conv2d`` layers go on tiles through :func:`memxbar.torch.convert`) or the path of a
checkpoint of either (``.npz`` with ``w0, b0, w1, b1, ...``; ``.pt`` / ``.pth`` holding a
whole module).
"""

import copy
import functools
import importlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .mapping import Mapping

__all__ = ["MLP", "NETWORKS", "Network", "accuracy", "digits_mlp", "mnist1d_cnn", "network_from", "resolve",
           "resolve_callable"]


class MLP:
    """A ReLU MLP over ``layers`` (callables ``x -> W x + b``, float or analog): ``x -> logits``."""

    def __init__(self, layers):
        self.layers = list(layers)

    def __call__(self, x):
        for number, layer in enumerate(self.layers):
            x = layer(x)
            if number < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x


def accuracy(model, data):
    """Top-1 accuracy of ``model`` (numpy or torch, inputs -> logits) on ``data = (x, y)``."""
    x, y = data
    with _no_grad(model):
        logits = model(_like_model(model, x))
    logits = logits.detach().cpu().numpy() if hasattr(logits, "detach") else np.asarray(logits)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


def _like_model(model, x):
    if _is_torch_module(model):
        import torch

        return torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return x


def _no_grad(model):
    """``torch.no_grad()`` for a torch model: an evaluation builds no autograd graph."""
    if _is_torch_module(model):
        import torch

        return torch.no_grad()
    return nullcontext()


def _is_torch_module(obj):
    module = type(obj).__module__ or ""
    if not (module.startswith("torch") or hasattr(obj, "named_modules")):
        return False
    try:
        from torch import nn
    except ImportError:
        return False
    return isinstance(obj, nn.Module)


class Network:
    """A float model, its data and its metric, as :func:`memxbar.sweep` evaluates them.

    Parameters
    ----------
    name : str
        Shown in every result row.
    model : callable or str or list
        ``model()`` returns the trained float model (see the module's docstring); a path is a
        checkpoint; a list of ``(W, b)`` pairs is the model itself.
    data : callable
        ``data()`` returns what ``evaluate`` needs; a tuple of arrays ``(x, y, ...)`` is cut to
        the grid's ``samples`` and its first entry's length counts the inferences.
    evaluate : callable, optional
        ``evaluate(model, data)`` -> float or dict of floats, for the float and the analog model
        alike; default :func:`accuracy`.
    metric : str
        Column name of a float metric.
    """

    def __init__(self, name, model, data, evaluate=accuracy, metric="accuracy"):
        for what, function in (("data", data), ("evaluate", evaluate)):
            if not callable(function):
                raise TypeError(f"{what} must be a function, not {function!r}")
        if not (callable(model) or isinstance(model, (str, Path, list, tuple))):
            raise TypeError(f"model must be a function, a checkpoint path or a list of (W, b) pairs, "
                            f"not {model!r}")
        self.name, self.model, self.data, self.evaluate, self.metric = name, model, data, evaluate, metric

    def load(self, samples=None):
        """``(float model, data)``: the payload shipped once to every worker."""
        model = self.model() if callable(self.model) else self.model
        model = _checkpoint(model) if isinstance(model, (str, Path)) else model
        data = self.data()
        if samples is not None:
            if not isinstance(data, tuple) or not all(hasattr(part, "__len__") for part in data):
                raise ValueError(f"samples={samples!r} needs data() to return a tuple of arrays "
                                 f"(x, y, ...), not {type(data).__name__}")
            if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= len(data[0]):
                raise ValueError(f"samples must be an integer in [1, {len(data[0])}], not {samples!r}")
            data = tuple(part[:samples] for part in data)
        return model, data

    def for_workers(self):
        """This network without its loaders: tasks carry only what runs on a worker (the payload
        travels once, scattered)."""
        light = copy.copy(self)
        light.model = light.data = None
        return light

    def program(self, payload, device, device_model, seed, read_noise=None):
        """The float model of ``payload`` on ``device``, programmed: ``(analog, mapping)``."""
        model, _ = payload
        if _is_torch_module(model):
            from .torch import convert

            return convert(model, device, device_model, seed=seed, read_noise=read_noise)
        layers = _layer_pairs(model)
        mapping = Mapping(device, device_model, seed=seed, read_noise=read_noise)
        analog = MLP(mapping.add(w, b) for w, b in layers)
        mapping.program()
        return analog, mapping

    @staticmethod
    def drift(analog, mapping, t):
        """Age ``analog`` to ``t`` seconds after programming (a torch model through its own verb)."""
        if hasattr(analog, "drift_analog_weights"):
            analog.drift_analog_weights(t)  # keeps the layers' view of their tiles current
        else:
            mapping.drift(t)

    @staticmethod
    def compensate(analog, mapping, compensation):
        """Evaluate ``analog`` from now on with drift ``compensation`` (``None`` for none)."""
        layers = analog.analog_layers() if hasattr(analog, "analog_layers") else mapping.layers
        for layer in layers:
            layer.compensation = compensation

    def float_model(self, payload):
        """The float model of ``payload`` as ``evaluate`` takes it (the reference line of a plot)."""
        model, _ = payload
        if _is_torch_module(model):
            return model.eval()
        return MLP(lambda x, w=w, b=b: x @ w.T + (0.0 if b is None else b) for w, b in _layer_pairs(model))

    def metrics(self, model, data):
        """``evaluate`` as a dict of floats."""
        value = self.evaluate(model, data)
        if isinstance(value, dict):
            return {str(name): float(v) for name, v in value.items()}
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return {self.metric: float(value)}
        raise TypeError(f"evaluate must return a number or a dict of numbers, not {value!r}")

    @staticmethod
    def inferences(data):
        """Inferences in one evaluation of ``data`` (for per-inference energy and latency)."""
        if isinstance(data, tuple) and data and hasattr(data[0], "__len__"):
            return len(data[0])
        return None

    def __repr__(self):
        return f"<memxbar Network {self.name}>"


def _layer_pairs(model):
    if not isinstance(model, (list, tuple)) or not model:
        raise TypeError(f"the float model must be a torch.nn.Module or a list of (W, b) pairs, "
                        f"not {type(model).__name__}")
    pairs = []
    for number, layer in enumerate(model):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise TypeError(f"layer {number} of the float model must be a (W, b) pair, not {layer!r}")
        pairs.append(layer)
    return pairs


def _checkpoint(path):
    path = Path(path)
    if not path.exists():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".npz":
        saved = np.load(path)
        count = len([name for name in saved.files if name.startswith("w")])
        if count == 0 or any(f"w{k}" not in saved.files for k in range(count)):
            raise ValueError(f"checkpoint {str(path)!r} must hold arrays w0, b0, w1, b1, ...")
        return [(saved[f"w{k}"], saved[f"b{k}"] if f"b{k}" in saved.files else None) for k in range(count)]
    if path.suffix in (".pt", ".pth"):
        try:
            import torch
        except ImportError:
            raise ImportError("a .pt checkpoint needs PyTorch: pip install 'memxbar[torch]'") from None
        return torch.load(path, weights_only=False)  # the user's own file, holding a whole module
    raise ValueError(f"checkpoint {str(path)!r}: use .npz (w0, b0, ...) or .pt / .pth (a torch module)")


def digits_mlp(hidden=32):
    """The main job of ``memxbar demo``: a 64-hidden-10 MLP on scikit-learn's digits (test split)."""
    from .digits import load_digits, trained_mlp

    def data():
        _, x_test, _, y_test = load_digits()
        return x_test, y_test

    return Network(f"digits-mlp-{hidden}", lambda: trained_mlp(hidden, say=lambda line: None), data)


def mnist1d_cnn(hardware_aware=False):
    """The main job of ``memxbar demo``: its 1-d CNN on mnist1d (the 1,000 test signals).

    The float-trained network, or with ``hardware_aware`` its hardware-aware fine-tune; both
    trained once and cached by :func:`memxbar.demo.trained_cnns`. The name carries the demo's
    training recipe, so a retrained network never resumes from an old sweep's rows.
    """
    from . import demo

    def model():
        float_net, hwa_net = demo.trained_cnns(say=lambda line: None)
        return hwa_net if hardware_aware else float_net

    def data():
        _, _, x_test, y_test = demo.load_mnist1d()
        return x_test, y_test

    return Network(f"mnist1d-{demo.RECIPE}{'-hwa' if hardware_aware else ''}", model, data)


#: networks by name; each value builds a :class:`Network`
NETWORKS = {"mnist1d-cnn": mnist1d_cnn,
            "mnist1d-cnn-hwa": functools.partial(mnist1d_cnn, hardware_aware=True),
            "digits-mlp": digits_mlp}


def resolve_callable(text, what):
    """``module:function`` -> the function."""
    module_name, colon, attribute = text.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{what} {text!r} must be module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{what} {text!r}: cannot import {module_name!r} ({error})") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} {text!r}: {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    return target


def resolve(network):
    """A :class:`Network` from itself, a name in :data:`NETWORKS` or ``module:function``."""
    if isinstance(network, Network):
        return network
    if not isinstance(network, str):
        raise TypeError(f"network must be a name, module:function or a memxbar Network, not {network!r}")
    if network in NETWORKS:
        return NETWORKS[network]()
    if ":" not in network:
        raise ValueError(f"unknown network {network!r}; use one of {', '.join(sorted(NETWORKS))} "
                         f"or module:function returning a memxbar.sweep_networks.Network")
    made = resolve_callable(network, "network")
    made = made() if callable(made) and not isinstance(made, Network) else made
    if not isinstance(made, Network):
        raise TypeError(f"network {network!r} must return a memxbar.sweep_networks.Network, not {made!r}")
    return made


def network_from(model, evaluate=None, data=None, name=None):
    """A :class:`Network` from the user's model factory (or checkpoint), metric and data.

    ``model``, ``evaluate`` and ``data`` are callables or ``module:function`` strings; without
    ``data`` the model factory returns ``(float model, data)`` itself.
    """
    def function(value, what):
        return resolve_callable(value, what) if isinstance(value, str) and ":" in value else value

    if name is None:  # the network's name enters the grid hash: name it after what it runs
        name = model if isinstance(model, str) else getattr(model, "__qualname__", None) or "user"
        name = name if isinstance(model, str) else f"{getattr(model, '__module__', '')}:{name}"
    model, evaluate, data = function(model, "model"), function(evaluate, "evaluate"), function(data, "data")
    if data is None:
        if not callable(model):
            raise ValueError("without data, model must be a function returning (float model, data)")
        pair = {}

        def load_pair():
            if not pair:
                made = model()
                if not isinstance(made, tuple) or len(made) != 2:
                    raise TypeError("without data, model() must return (float model, data)")
                pair["model"], pair["data"] = made
            return pair

        return Network(name, lambda: load_pair()["model"], lambda: load_pair()["data"],
                       evaluate or accuracy)
    return Network(name, model, data, evaluate or accuracy)

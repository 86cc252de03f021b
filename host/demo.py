"""``memxbar demo``: what PCM noise and drift do to a small CNN, and what wins accuracy back.

A 1-d CNN (three convolutions of 16 channels, a linear classifier; 2,416 weights) is trained
in PyTorch on mnist1d (Greydanus 2020: 4,000 training and 1,000 test signals of 40 samples,
generated locally by ``mnist1d.data.make_dataset``, no download), and a copy is fine-tuned
hardware-aware (:mod:`memxbar.torch_hwa`: PCM programming, drift and read noise from 1 s to
1 year drawn in every forward pass, global drift compensation, DAC/ADC quantisation). Both are
cached on disk. Each is converted with :func:`memxbar.torch.convert_to_analog` onto one tile
of the device (the four matrices share its 64x64 cells) and its test accuracy measured in
floats, on an ideal analog tile, and with aihwkit's PCM statistics at 1 s, 1 h, 1 day and 1
year after programming, without and with each drift compensation, over several device seeds.
The numbers depend only on the seeds and the build: ``model://`` and ``sim://`` print the
same table.
"""

import hashlib
import json
import time

import numpy as np

from .cache import cache_root
from .devices import PCM, Ideal
from .energy import energy_pj, window_energy_pj

__all__ = ["COMPENSATIONS", "TIMES", "demo", "load_mnist1d", "plot", "table", "trained_cnns"]

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 365.0 * 86400.0}
COMPENSATIONS = ("none", "global", "column", "calibrated")
HWA_COMPENSATIONS = ("none", "global")
RECIPE = "cnn16-v2"  # bump when the network or its training changes: the cache key includes it
CHANNELS = 16


def _needs(module, extra="demo"):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"the demo needs {module}: pip install 'memxbar[{extra}]'") from None


def load_mnist1d():
    """``(x_train, y_train, x_test, y_test)``: mnist1d's default 4,000/1,000 split, ``x`` ``(n, 1, 40)``."""
    _needs("mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    path = cache_root() / "demo" / "mnist1d-default.npz"
    if not path.exists():
        data = make_dataset(get_dataset_args())  # generated from templates: no download
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
    saved = np.load(path)
    return (saved["x"][:, None].astype(np.float32), saved["y"].astype(np.int64),
            saved["x_test"][:, None].astype(np.float32), saved["y_test"].astype(np.int64))


def cnn():
    """The demo's network: 1 -> 16 -> 16 -> 16 channels (strides 2), ReLU, a linear classifier."""
    from torch import nn

    c = CHANNELS
    return nn.Sequential(nn.Conv1d(1, c, 5, 2, 2), nn.ReLU(), nn.Conv1d(c, c, 3, 2, 1), nn.ReLU(),
                         nn.Conv1d(c, c, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * c, 10))


def _fit(model, x, y, epochs, lr, weight_decay, seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the training noise draws from the global generator
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 100):
            batch = order[start:start + 100]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
        schedule.step()
    return model.eval()


def trained_cnns(say=print):
    """``(float_cnn, hwa_cnn)``: the float-trained network and its hardware-aware fine-tune; cached."""
    torch = _needs("torch")
    import mnist1d

    from .torch import HardwareAware, convert_to_analog, convert_to_digital

    version = getattr(mnist1d, "__version__", "?")
    key = hashlib.sha256(f"{RECIPE}-{torch.__version__}-{version}".encode()).hexdigest()[:16]
    path = cache_root() / "demo" / f"cnn-{key}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        nets = cnn(), cnn()
        for net, name in zip(nets, ("float", "hwa"), strict=True):
            net.load_state_dict(saved[name])
        return tuple(net.eval() for net in nets)
    x, y, _, _ = load_mnist1d()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads cost more than they give
    try:
        with torch.random.fork_rng():  # the caller's random state stays as it was
            say(f"training the CNN on mnist1d ({len(x)} signals) ...")
            torch.manual_seed(0)  # the initial weights: the same network from every fresh clone
            float_net = _fit(cnn(), x, y, epochs=100, lr=1e-2, weight_decay=0.05, seed=1)
            say("fine-tuning it hardware-aware (PCM noise, drift 1 s to 1 year, global compensation) ...")
            aware = convert_to_analog(float_net, device_model=PCM(), compensation="global",
                                      hardware_aware=HardwareAware(t=(1.0, TIMES["1 year"])))
            hwa_net = convert_to_digital(_fit(aware, x, y, epochs=40, lr=2e-3, weight_decay=0.05, seed=2))
    finally:
        torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"float": float_net.state_dict(), "hwa": hwa_net.state_dict()}, path)
    return float_net.eval(), hwa_net.eval()


def demo(url="model://", seeds=10, samples=None, clock_hz=30e6, times=None, progress=True, say=print):
    """Run the demo on the device at ``url``; returns the results as a JSON-ready dict.

    ``samples`` limits the test signals (default: all 1,000); ``times`` the names of
    :data:`TIMES` to measure (default: all); ``clock_hz`` turns the MAC-array cycles of one
    inference into a latency.
    """
    torch = _needs("torch")
    import memxbar

    from .torch import convert_to_analog

    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    times = list(TIMES) if times is None else list(times)
    unknown = [name for name in times if name not in TIMES]
    if unknown or not times:
        raise ValueError(f"times must name some of {list(TIMES)}, not {times!r}")
    float_net, hwa_net = trained_cnns(say=say)
    _, _, x_test, y_test = load_mnist1d()
    if samples is not None:
        if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= len(x_test):
            raise ValueError(f"samples must be an integer in [1, {len(x_test)}], not {samples!r}")
        x_test, y_test = x_test[:samples], y_test[:samples]
    x = torch.from_numpy(x_test)

    def accuracy(net):
        with torch.no_grad():
            return float(np.mean(net(x).argmax(dim=1).numpy() == y_test))

    started = time.monotonic()
    weights = sum(m.weight.numel() for m in float_net if hasattr(m, "weight"))
    with memxbar.open(url) as dev:
        cfg = dev.info.config
        if not cfg.physics:
            raise memxbar.Unsupported(f"{url} is an ideal build (physics=False): the demo needs device "
                                      f"physics; use model://, sim:// or a board built with physics")
        results = {"backend": url, "build_id": f"{dev.info.build_id:08x}", "config": cfg.as_dict(),
                   "dataset": {"name": "mnist1d", "test_signals": len(x_test)},
                   "network": f"1-d CNN, 3 conv x {CHANNELS} channels + linear, {weights} weights",
                   "seeds": list(range(seeds)), "times": times,
                   "float": accuracy(float_net), "hwa_float": accuracy(hwa_net)}
        steps = 1 + seeds * (2 + len(times) * (len(COMPENSATIONS) + len(HWA_COMPENSATIONS)))
        bar = _progress(steps, progress)
        ideal = convert_to_analog(float_net, dev, Ideal())
        results["ideal"] = accuracy(ideal)
        results["pages"] = ideal.analog_layers()[0].mapping.pages
        bar.update()

        runs = {"pcm": {when: {name: [] for name in COMPENSATIONS} for when in times},
                "hwa": {when: {name: [] for name in HWA_COMPENSATIONS} for when in times}}
        cost = None
        for seed in range(seeds):
            for kind, net, names in (("pcm", float_net, COMPENSATIONS), ("hwa", hwa_net, HWA_COMPENSATIONS)):
                before = dev.counters()
                analog = convert_to_analog(net, dev, PCM(), seed=seed)
                programming = _delta(dev.counters(), before)
                bar.update()
                for when in times:
                    analog.drift_analog_weights(TIMES[when])
                    for name in names:
                        for layer in analog.analog_layers():
                            layer.compensation = None if name == "none" else name
                        meter = _Cost(analog, dev) if cost is None else None
                        runs[kind][when][name].append(accuracy(analog))
                        if meter is not None:  # the first accuracy run prices one inference
                            cost = meter.finish(len(x_test), programming, cfg, clock_hz)
                        bar.update()
        bar.close()
    results["pcm"] = {when: {name: _stats(v) for name, v in by.items()} for when, by in runs["pcm"].items()}
    results["hwa"] = {when: {name: _stats(v) for name, v in by.items()} for when, by in runs["hwa"].items()}
    results["cost"] = cost
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def _delta(after, before):
    return {name: after[name] - before[name] for name in after}


def _stats(values):
    n = len(values)
    std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "se": std / np.sqrt(n), "runs": values}


class _Cost:
    """Per-inference latency and energy of one accuracy run, per layer and in total."""

    def __init__(self, analog, dev):
        from .torch_layers import AnalogLayer

        self.layers = [(name, m) for name, m in analog.named_modules() if isinstance(m, AnalogLayer)]
        self.events = {name: module.events() for name, module in self.layers}
        self.dev, self.device_before = dev, dev.counters()

    def finish(self, images, programming, cfg, clock_hz):
        layers = {}
        for name, module in self.layers:
            events = {k: (v - self.events[name][k]) / images for k, v in module.events().items()}
            layers[f"{name} {type(module).__name__}"] = {
                "mvms": events["mvms"], "cycles": events["cycles"],
                "latency_us": events["cycles"] / clock_hz * 1e6,
                "energy_pj": window_energy_pj(events, cfg)}
        device = {k: v / images for k, v in _delta(self.dev.counters(), self.device_before).items()}
        total = {"mvms": sum(v["mvms"] for v in layers.values()),
                 "cycles": sum(v["cycles"] for v in layers.values()),
                 "energy_pj": {k: sum(v["energy_pj"][k] for v in layers.values())
                               for k in ("cell_reads", "adc", "dac", "total")}}
        total["latency_us"] = total["cycles"] / clock_hz * 1e6
        return {"clock_mhz": clock_hz / 1e6, "layers": layers, "total": total,
                "whole_array_energy_pj": energy_pj(device, cfg),
                "programming": {"cell_writes": programming["cell_writes"],
                                "write_pulses": programming["write_pulses"],
                                "energy_nj": energy_pj(programming, cfg)["programming"] / 1e3}}


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(steps, enabled):
    if not enabled:
        return _NoBar()
    tqdm = _needs("tqdm").tqdm
    return tqdm(total=steps, desc="memxbar demo", unit="run", leave=False)


ROWS = [("pcm", "none", "PCM"), ("pcm", "global", "PCM + global comp."),
        ("pcm", "column", "PCM + column comp."), ("pcm", "calibrated", "PCM + calibrated"),
        ("hwa", "none", "HWA-trained PCM"), ("hwa", "global", "HWA + global comp.")]


def table(results):
    """The accuracy table (mean +- standard error over the seeds) and the cost per layer, as text."""
    times = results["times"]
    width = 18
    lines = [f"memxbar demo: {results['network']} on {results['dataset']['name']} "
             f"({results['dataset']['test_signals']} test signals), backend {results['backend']}, "
             f"build {results['build_id']}, {results['pages']} tile(s)",
             f"{'condition':<22}" + "".join(f"{when:>{width}}" for when in times),
             f"{'float':<22}{100 * results['float']:>{width - 2}.2f} %",
             f"{'float, HWA-trained':<22}{100 * results['hwa_float']:>{width - 2}.2f} %",
             f"{'ideal analog':<22}{100 * results['ideal']:>{width - 2}.2f} %"]
    for kind, name, label in ROWS:
        cells = [results[kind][when][name] for when in times]
        lines.append(f"{label:<22}" + "".join(f"{100 * s['mean']:>{width - 9}.2f} +- {100 * s['se']:4.2f}"
                                            for s in cells))
    n = len(results["seeds"])
    lines.append(f"mean +- standard error over {n} device seeds (PCM as aihwkit's PCMLikeNoiseModel, "
                 f"per-read noise where the build has it)")
    if n > 1:
        for when in times[-2:]:
            lines.append(f"at {when}: " + "; ".join(
                f"{label} {_gain(results, kind, name, when)}" for kind, name, label in ROWS[1:]))
    cost = results["cost"]
    lines.append(f"per inference at {cost['clock_mhz']:g} MHz (windowed RUNs priced for the cells they use):")
    for name, layer in [*cost["layers"].items(), ("total", cost["total"])]:
        e = layer["energy_pj"]
        lines.append(f"  {name:<22}{layer['mvms']:7.1f} MVMs {layer['latency_us']:8.1f} us "
                     f"{e['total'] / 1e3:7.3f} nJ (ADC {e['adc'] / 1e3:.3f}, DAC {e['dac'] / 1e3:.3f}, "
                     f"cells {e['cell_reads'] / 1e3:.4f})")
    whole = cost["whole_array_energy_pj"]
    lines.append(f"  the device's own counters (every MVM reads the whole array): "
                 f"{whole['total'] / 1e3:.3f} nJ per inference")
    lines.append(f"programming: {cost['programming']['write_pulses']} pulses, about "
                 f"{cost['programming']['energy_nj']:.0f} nJ; took {results['seconds']:.0f} s")
    return "\n".join(lines)


def _gain(results, kind, name, when):
    """The difference to uncompensated PCM in percent and in standard errors of the difference."""
    a, b = results[kind][when][name], results["pcm"][when]["none"]
    se = np.hypot(a["se"], b["se"])
    diff = 100 * (a["mean"] - b["mean"])
    return f"{diff:+.2f} % ({diff / (100 * se) if se > 0 else float('inf'):+.1f} SE)"


def plot(results, path):
    """Accuracy against time since programming, with standard-error bars, as a PNG."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install 'memxbar[demo]' (or --plot -)") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = results["times"]
    times = [TIMES[when] for when in names]
    figure, axes = pyplot.subplots(figsize=(7.0, 4.4), dpi=120)
    axes.axhline(100 * results["float"], color="black", linestyle="--", label="float")
    axes.axhline(100 * results["ideal"], color="grey", linestyle=":", label="ideal analog")
    for kind, name, label in ROWS:
        mean = [100 * results[kind][when][name]["mean"] for when in names]
        se = [100 * results[kind][when][name]["se"] for when in names]
        style = "-" if kind == "pcm" else "--"
        axes.errorbar(times, mean, yerr=se, marker="o", capsize=3, linestyle=style, label=label)
    axes.set_xscale("log")
    axes.set_xticks(times, names)
    axes.set_xlabel("time since programming")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"CNN on mnist1d, {results['backend']}, {len(results['seeds'])} seeds "
                   f"(bars: standard error)", fontsize="medium")
    axes.legend(loc="lower left", fontsize="small", ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def to_json(results):
    return json.dumps(results, indent=2)

"""``memxbar demo``: what PCM noise and drift do to a real classifier.

A small MLP (64 -> hidden -> 10, ReLU) is trained with scikit-learn on its bundled
handwritten digits (8x8 images, 1,797 samples; no download) and mapped onto one device with
:class:`memxbar.mapping.Mapping`: both layers share the cells of one tile, each in its own
block. Its test accuracy is measured in floats, on an ideal analog tile (only the DAC, ADC and
conductance levels), and with aihwkit's PCM statistics at several times after programming,
without and with drift compensation (global by default), over several seeds. The numbers depend only on
the seeds and the build, so ``model://`` and ``sim://`` print the same table.
"""

import hashlib
import json
import time

import numpy as np

from .cache import cache_root
from .devices import PCM, Ideal
from .energy import energy_pj
from .mapping import Mapping

__all__ = ["TIMES", "demo", "load_digits", "plot", "table", "trained_mlp"]

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 365.0 * 86400.0}


# the demo's own dependencies (the `demo` extra): import name -> distribution name
EXTRA = {"sklearn": "scikit-learn", "tqdm": "tqdm", "matplotlib": "matplotlib"}


def _require(*modules):
    """One clear ``ImportError`` naming the extra, not ``No module named ...`` from deep inside."""
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(EXTRA[module])
    if missing:
        raise ImportError(f"the demo needs {' and '.join(missing)}: pip install 'memxbar[demo]'")


def _sklearn():
    _require("sklearn")


def load_digits(test_fraction=0.2):
    """scikit-learn's digits, pixels scaled to [0, 1], split 80/20 stratified (fixed split)."""
    _sklearn()
    from sklearn.datasets import load_digits as digits
    from sklearn.model_selection import train_test_split

    data = digits()
    x = data.data / 16.0
    return train_test_split(x, data.target, test_size=test_fraction, random_state=0, stratify=data.target)


def trained_mlp(hidden=32, seed=0, say=print):
    """``[(W1, b1), (W2, b2)]`` of a trained MLP, shaped like ``nn.Linear`` (out, in); cached on disk."""
    _sklearn()
    import sklearn
    from sklearn.neural_network import MLPClassifier

    key = hashlib.sha256(f"digits-mlp-{hidden}-{seed}-{sklearn.__version__}".encode()).hexdigest()[:16]
    path = cache_root() / "demo" / f"mlp-{key}.npz"
    if path.exists():
        saved = np.load(path)
        return [(saved["w1"], saved["b1"]), (saved["w2"], saved["b2"])]
    x_train, _, y_train, _ = load_digits()
    say(f"training a 64-{hidden}-10 MLP on the digits ({len(x_train)} images) ...")
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=500, alpha=1e-3, random_state=seed)
    clf.fit(x_train, y_train)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, w1=w1.T, b1=b1, w2=w2.T, b2=b2)
    return [(w1.T, b1), (w2.T, b2)]


def _predict(layers, x):
    hidden = np.maximum(layers[0](x), 0.0)
    return np.argmax(layers[1](hidden), axis=1)


def _float_layers(mlp):
    return [lambda x, w=w, b=b: x @ w.T + b for w, b in mlp]


def demo(url="sim://", seeds=3, samples=None, hidden=32, clock_hz=30e6, compensation="global", progress=True,
         say=print):
    """Run the demo on the device at ``url``; returns the results as a JSON-ready dict.

    ``samples`` limits the test images (default: all 360); ``clock_hz`` turns the MAC-array
    cycles of one inference into a latency; ``compensation`` is the drift compensation
    compared with none (``"global"``, ``"column"`` or ``"calibrated"``).
    """
    import memxbar

    _require("sklearn", *(["tqdm"] if progress else []))
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    if compensation not in ("global", "column", "calibrated"):
        raise ValueError(f"compensation must be 'global', 'column' or 'calibrated', not {compensation!r}")
    compensations = {"none": None, compensation: compensation}
    mlp = trained_mlp(hidden, say=say)
    _, x_test, _, y_test = load_digits()
    if samples is not None:
        if not isinstance(samples, int) or not 1 <= samples <= len(x_test):
            raise ValueError(f"samples must be an integer in [1, {len(x_test)}], not {samples!r}")
        x_test, y_test = x_test[:samples], y_test[:samples]

    def accuracy(layers):
        return float(np.mean(_predict(layers, x_test) == y_test))

    started = time.monotonic()
    with memxbar.open(url) as dev:
        cfg = dev.info.config
        if not cfg.physics:
            raise memxbar.Unsupported(f"{url} is an ideal build (physics=False): the demo needs device "
                                      f"physics; use model://, sim:// or a board built with physics")
        results = {"backend": url, "build_id": f"{dev.info.build_id:08x}", "config": cfg.as_dict(),
                   "dataset": {"name": "scikit-learn digits", "test_images": len(x_test)},
                   "mlp": f"64-{hidden}-10 ReLU", "seeds": list(range(seeds)), "compensation": compensation,
                   "float": accuracy(_float_layers(mlp))}
        steps = 1 + seeds * (1 + len(TIMES) * len(compensations))
        bar = _progress(steps, progress)

        ideal = Mapping(dev, Ideal())
        ideal_layers = [ideal.add(w, b) for w, b in mlp]
        ideal.program()
        results["ideal"] = accuracy(ideal_layers)
        bar.update()

        runs = {when: {name: [] for name in compensations} for when in TIMES}
        cost = None
        for seed in range(seeds):
            mapping = Mapping(dev, PCM(), seed=seed)
            layers = [mapping.add(w, b) for w, b in mlp]
            before = dev.counters()
            mapping.program()
            programming = _delta(dev.counters(), before)
            bar.update()
            for when, t in TIMES.items():
                mapping.drift(t)
                for name, chosen in compensations.items():
                    for layer in layers:
                        layer.compensation = chosen
                    before = dev.counters()
                    runs[when][name].append(accuracy(layers))
                    if cost is None:
                        cost = _cost(_delta(dev.counters(), before), len(x_test), programming, cfg, clock_hz)
                    bar.update()
        bar.close()
    results["pcm"] = {when: {name: _stats(values) for name, values in by_name.items()}
                      for when, by_name in runs.items()}
    results["cost"] = cost
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def _delta(after, before):
    return {name: after[name] - before[name] for name in after}


def _stats(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": values}


def _cost(events, images, programming, cfg, clock_hz):
    """Per-inference latency and energy from the event counters of one accuracy run."""
    per_image = {name: value / images for name, value in events.items()}
    return {
        "clock_mhz": clock_hz / 1e6,
        "mvms_per_inference": per_image["mvms"],
        "cycles_per_inference": per_image["cycles"],
        "latency_us": per_image["cycles"] / clock_hz * 1e6,
        "energy_pj_per_inference": energy_pj(per_image, cfg),
        "programming": {"cell_writes": programming["cell_writes"],
                        "write_pulses": programming["write_pulses"],
                        "verify_reads": programming["verify_reads"],
                        "energy_nj": energy_pj(programming, cfg)["programming"] / 1e3},
    }


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(steps, enabled):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=steps, desc="memxbar demo", unit="run", leave=False)


def table(results):
    """The accuracy table as text."""
    pct = "{:6.2f} %".format
    lines = [f"memxbar demo: {results['mlp']} MLP on {results['dataset']['name']} "
             f"({results['dataset']['test_images']} test images), backend {results['backend']}, "
             f"build {results['build_id']}",
             f"{'condition':<22}{'no compensation':>22}{results['compensation'] + ' drift comp.':>22}",
             f"{'float':<22}{pct(100 * results['float']):>22}",
             f"{'ideal analog':<22}{pct(100 * results['ideal']):>22}"]
    for when, by_name in results["pcm"].items():
        cells = [f"{100 * s['mean']:6.2f} +- {100 * s['std']:4.2f} %" for s in by_name.values()]
        lines.append(f"{'PCM, t = ' + when:<22}{cells[0]:>22}{cells[1]:>22}")
    cost = results["cost"]
    energy = cost["energy_pj_per_inference"]
    nj = {name: value / 1e3 for name, value in energy.items()}
    lines += [f"mean +- std over {len(results['seeds'])} seeds; PCM as aihwkit's PCMLikeNoiseModel, "
              f"per-read noise where the build has it",
              f"per inference: {cost['mvms_per_inference']:.2f} MVMs, {cost['cycles_per_inference']:.0f} "
              f"MAC-array cycles = {cost['latency_us']:.1f} us at {cost['clock_mhz']:g} MHz; estimated "
              f"analog energy {nj['total']:.2f} nJ (ADC {nj['adc']:.2f}, DAC {nj['dac']:.2f}, "
              f"cells {nj['cell_reads']:.3f} nJ)",
              f"programming: {cost['programming']['write_pulses']} pulses, about "
              f"{cost['programming']['energy_nj']:.0f} nJ; took {results['seconds']:.0f} s"]
    return "\n".join(lines)


def plot(results, path):
    """Accuracy against time since programming, as a PNG."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install 'memxbar[demo]' (or --plot -)") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    times = list(TIMES.values())
    figure, axes = pyplot.subplots(figsize=(6.4, 4.0), dpi=120)
    axes.axhline(100 * results["float"], color="black", linestyle="--", label="float")
    axes.axhline(100 * results["ideal"], color="grey", linestyle=":", label="ideal analog")
    chosen = results["compensation"]
    for name, label in (("none", "PCM"), (chosen, f"PCM + {chosen} drift compensation")):
        mean = [100 * results["pcm"][when][name]["mean"] for when in TIMES]
        std = [100 * results["pcm"][when][name]["std"] for when in TIMES]
        axes.errorbar(times, mean, yerr=std, marker="o", capsize=3, label=label)
    axes.set_xscale("log")
    axes.set_xticks(times, list(TIMES))
    axes.set_xlabel("time since programming")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"{results['mlp']} on digits, {results['backend']}, {len(results['seeds'])} seeds")
    axes.legend(loc="lower left", fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def to_json(results):
    return json.dumps(results, indent=2)

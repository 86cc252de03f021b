"""scikit-learn's digits and a small MLP trained on them: the sweep's quick network.

The 8x8 digits (1,797 images, bundled with scikit-learn: no download) and a 64-hidden-10
ReLU MLP are what ``memxbar sweep``'s ``digits-mlp`` network maps; they were the main job of
``memxbar demo`` before its mnist1d CNN. The trained weights are cached on disk.
"""

import hashlib

import numpy as np

from .cache import cache_root

__all__ = ["load_digits", "trained_mlp"]


def _sklearn():
    try:
        import sklearn  # noqa: F401 -- only whether it is installed
    except ImportError:
        raise ImportError("the digits network needs scikit-learn: pip install 'memxbar[sweep]'") from None


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

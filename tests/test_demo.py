"""`memxbar demo`: a real classifier on model:// and on the RTL, identical numbers."""

import json

import numpy as np
import pytest

from memxbar.cli import main
from memxbar.demo import TIMES, demo, load_digits, table, trained_mlp

QUIET = {"progress": False, "say": lambda line: None}


def test_the_trained_mlp_is_a_real_digits_classifier():
    (w1, b1), (w2, b2) = trained_mlp(say=lambda line: None)
    assert w1.shape == (32, 64) and w2.shape == (10, 32)
    _, x_test, _, y_test = load_digits()
    assert len(x_test) == 360
    predicted = np.argmax(np.maximum(x_test @ w1.T + b1, 0) @ w2.T + b2, axis=1)
    assert np.mean(predicted == y_test) > 0.95


def test_model_results_cover_every_condition():
    results = demo("model://", seeds=2, samples=120, compensation="column", **QUIET)
    assert results["float"] > 0.93 and results["ideal"] > 0.9
    assert list(results["pcm"]) == list(TIMES)
    for by_name in results["pcm"].values():
        assert set(by_name) == {"none", "column"}
        assert all(len(stats["runs"]) == 2 for stats in by_name.values())
    cost = results["cost"]
    assert cost["mvms_per_inference"] >= 2  # two layers, plus bound-management retries
    assert cost["energy_pj_per_inference"]["total"] > 0
    assert cost["programming"]["write_pulses"] >= 2 * (32 * 64 + 10 * 32)
    text = table(results)
    assert "PCM, t = 1 year" in text and "column drift comp." in text


@pytest.mark.verilator
def test_rtl_gives_the_models_numbers():
    on_model = demo("model://", seeds=1, samples=24, **QUIET)
    on_rtl = demo("sim://", seeds=1, samples=24, **QUIET)
    for key in ("float", "ideal", "pcm", "cost", "build_id"):
        assert on_rtl[key] == on_model[key], key


def test_cli_json_and_plot(tmp_path, capsys):
    png = tmp_path / "accuracy.png"
    assert main(["demo", "--backend", "model", "--seeds", "1", "--samples", "30", "--quiet", "--json",
                 "--plot", str(png)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["backend"] == "model://" and results["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--seeds", "0"], 2, "seeds must be a positive integer, not 0"),
    (["--compensation", "drift"], 2, "compensation must be 'global', 'column' or 'calibrated', not 'drift'"),
    (["--samples", "1000"], 2, r"samples must be an integer in [1, 360], not 1000"),
    (["--backend", "model://?physics=0"], 3, "ideal build"),
])
def test_cli_bad_input_is_one_line(args, code, message, capsys):
    assert main(["demo", "--backend", "model", "--quiet", "--plot", "-", *args]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_missing_extra_is_named(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # as if tqdm were not installed
    assert main(["demo", "--backend", "model", "--seeds", "1", "--plot", "-"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "memxbar: error: the demo needs tqdm: pip install 'memxbar[demo]'"

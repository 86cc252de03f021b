"""`memxbar demo`: a CNN on mnist1d on model:// and on the RTL, identical numbers."""

import json

import numpy as np
import pytest
import torch  # the demo extra, which the test extra includes

from memxbar.cli import main
from memxbar.demo import COMPENSATIONS, demo, load_mnist1d, table, trained_cnns

QUIET = {"progress": False, "say": lambda line: None}


def test_the_trained_cnns_are_real_mnist1d_classifiers():
    float_net, hwa_net = trained_cnns(say=lambda line: None)
    x_train, y_train, x_test, y_test = load_mnist1d()
    assert set(np.unique(y_train)) == set(range(10))
    assert x_train.shape == (4000, 1, 40) and x_test.shape == (1000, 1, 40)
    assert sum(m.weight.numel() for m in float_net if hasattr(m, "weight")) <= 64 * 64
    with torch.no_grad():
        for net in (float_net, hwa_net):
            predicted = net(torch.from_numpy(x_test)).argmax(dim=1).numpy()
            assert np.mean(predicted == y_test) > 0.8  # an MLP reaches about 0.7 on mnist1d


def test_model_results_cover_every_condition():
    results = demo("model://", seeds=2, samples=100, times=["1 s", "1 year"], **QUIET)
    assert results["float"] > 0.8 and results["ideal"] > 0.75 and results["pages"] == 1
    assert list(results["pcm"]) == ["1 s", "1 year"]
    for when in results["times"]:
        assert set(results["pcm"][when]) == set(COMPENSATIONS)
        assert set(results["hwa"][when]) == {"none", "global"}
        assert all(len(s["runs"]) == 2 for s in results["pcm"][when].values())
    cost = results["cost"]
    # one MVM per output position: 20 + 10 + 5 positions and the linear layer's two row blocks
    mvms = [layer["mvms"] for layer in cost["layers"].values()]
    assert [int(m) for m in mvms] == [20, 10, 5, 2]  # bound-management retries add a fraction
    assert cost["total"]["mvms"] == pytest.approx(sum(mvms))
    # the windows use fewer cells than the whole array the device counts
    assert 0 < cost["total"]["energy_pj"]["total"] < cost["whole_array_energy_pj"]["total"]
    assert cost["programming"]["write_pulses"] >= 2 * 2416
    text = table(results)
    assert "HWA + global comp." in text and "1 year" in text and "0 AnalogConv1d" in text


def test_drift_costs_accuracy_and_compensation_and_training_win_some_back():
    results = demo("model://", seeds=4, samples=300, times=["1 s", "1 year"], **QUIET)
    pcm, hwa = results["pcm"], results["hwa"]

    def apart(a, b):  # a above b by more than three standard errors of the paired difference
        diff = np.subtract(a["runs"], b["runs"])  # seed k programs every network: pairs
        return diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff))

    assert apart(pcm["1 s"]["none"], pcm["1 year"]["none"])
    assert apart(pcm["1 year"]["global"], pcm["1 year"]["none"])
    assert apart(hwa["1 year"]["global"], pcm["1 year"]["global"])


@pytest.mark.verilator
def test_rtl_gives_the_models_numbers():
    on_model = demo("model://", seeds=1, samples=4, times=["1 day"], **QUIET)
    on_rtl = demo("sim://", seeds=1, samples=4, times=["1 day"], **QUIET)
    for key in ("float", "ideal", "pcm", "hwa", "cost", "build_id"):
        assert on_rtl[key] == on_model[key], key


def test_cli_json_and_plot(tmp_path, capsys):
    png = tmp_path / "accuracy.png"
    assert main(["demo", "--backend", "model", "--seeds", "1", "--samples", "30", "--times", "1 s,1 day",
                 "--quiet", "--json", "--plot", str(png)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["backend"] == "model://" and results["plot"] == str(png)
    assert results["times"] == ["1 s", "1 day"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--seeds", "0"], 2, "seeds must be a positive integer, not 0"),
    (["--times", "1 week"], 2, "times must name some of ['1 s', '1 h', '1 day', '1 year'], not ['1 week']"),
    (["--samples", "2000"], 2, r"samples must be an integer in [1, 1000], not 2000"),
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

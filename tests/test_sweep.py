"""`memxbar sweep`: Dask runs a grid's tasks; the table depends on the grid, not on the workers."""

import importlib
import json
import re
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="memxbar[sweep] is part of the test extra")

import memxbar  # noqa: E402
from memxbar.cli import main  # noqa: E402
from memxbar.digits import load_digits, trained_mlp  # noqa: E402
from memxbar.mapping import Mapping  # noqa: E402
from memxbar.sweep import bound_cluster, local_cluster, sweep  # noqa: E402
from memxbar.sweep_grid import Grid, parse_time  # noqa: E402
from memxbar.sweep_networks import Network  # noqa: E402
from memxbar.sweep_results import PLACEMENT  # noqa: E402

QUIET = {"progress": False, "say": lambda line: None}
# RRAM with enough noise that seeds and compensations give different accuracies
TINY = {"network": "digits-mlp", "device": "rram",
        "params": {"read_noise": [0.05, 0.2], "nu": 0.05, "prog_noise": 0.1},
        "seeds": 3, "times": [1, "1 day"], "compensation": ["none", "global"], "samples": 40}


@pytest.fixture(scope="module")
def threads():
    """An in-process cluster of two single-threaded workers, shared by the fast tests."""
    with local_cluster(2, processes=False) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def processes():
    """Two worker processes: data between them and the client is really serialised."""
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        yield client


def test_one_and_two_worker_processes_give_the_same_table(processes):
    one = sweep(TINY, workers=1, **QUIET)
    two = sweep(TINY, client=processes, **QUIET)
    assert one.table() == two.table()
    assert len(one.rows) == 2 * 3 * 2 * 2 and not one.failed
    assert len({row["worker"] for row in two.rows}) == 2  # both workers ran tasks
    assert len({row["accuracy"] for row in one.rows}) > 3  # the noise shows: the test can tell seeds apart
    assert one.rows[0]["time_s"] == 1.0 and one.rows[-1]["time_s"] == 86400.0
    assert [row["seed"] for row in one.rows[:8:4]] == [0, 1]


def test_a_point_is_the_number_of_its_own_programming_on_a_fresh_device(threads):
    """Tasks share kept devices on the workers; every point still equals a fresh device's number."""
    result = sweep(TINY, client=threads, **QUIET)
    mlp = trained_mlp(say=lambda line: None)
    _, x_test, _, y_test = load_digits()
    x, y = x_test[:40], y_test[:40]
    for params, seed in (({"read_noise": 0.2, "nu": 0.05, "prog_noise": 0.1}, 2),
                         ({"read_noise": 0.05, "nu": 0.05, "prog_noise": 0.1}, 1)):
        with memxbar.open("model://") as dev:
            mapping = Mapping(dev, memxbar.RRAM(**params), seed=seed)
            first, second = (mapping.add(w, b) for w, b in mlp)
            mapping.program()
            expected = []
            for t in (1.0, 86400.0):
                mapping.drift(t)
                for compensation in (None, "global"):
                    first.compensation = second.compensation = compensation
                    logits = second(np.maximum(first(x), 0.0))
                    expected.append(float(np.mean(np.argmax(logits, axis=1) == y)))
        got = [row["accuracy"] for row in result.rows
               if row["seed"] == seed and row["read_noise"] == params["read_noise"]]
        assert got == expected


def test_rows_carry_counters_costs_and_keys(threads):
    result = memxbar.sweep(TINY, client=threads, **QUIET)  # the package's own name for it
    row = result.rows[0]
    assert row["mvms"] >= 2 * 40 and row["macs"] > 0 and row["energy_pj_per_inference"] > 0
    assert row["latency_us_per_inference"] == pytest.approx(row["cycles"] / 40 / 30.0)
    assert 0 < row["task_cpu_s"] <= row["task_s"] + 0.01  # the task thread's CPU, within its wall time
    assert row["programming_write_pulses"] >= 2 * (32 * 64 + 10 * 32)
    assert row["build_id"] == f"{memxbar.open('model://').info.build_id:08x}"
    assert row["backend"] == "model://" and row["memxbar_version"] == memxbar.__version__
    assert result.meta["float"]["accuracy"] > 0.9


def test_resume_skips_the_points_already_written(threads, tmp_path):
    out = tmp_path / "grid"
    first = sweep({**TINY, "seeds": 2}, client=threads, output=out, **QUIET)
    said = []
    grown = sweep({**TINY, "seeds": 3}, client=threads, output=out, progress=False, say=said.append)
    assert said == [f"resuming: 4 of 6 tasks already in {out}"]
    kept = [row for row in grown.rows if row["seed"] < 2]
    assert kept == first.rows  # reused as written, timing columns included
    assert json.loads((tmp_path / "grid.json").read_text())["rows"] == grown.rows
    assert (tmp_path / "grid.csv").read_text().count("\n") == 1 + len(grown.rows)
    said.clear()
    sweep({**TINY, "seeds": 3, "times": [1, "1 h"]}, client=threads, output=out, progress=False,
          say=said.append)  # another schedule: nothing resumes
    assert said == [f"24 earlier row(s) of {out} are not reused (failed, in an unfinished task, or of "
                    f"another grid hash, build or memxbar version) and are replaced"]
    said.clear()
    sweep({**TINY, "seeds": 3, "times": [1, "1 h"]}, client=threads, output=out, resume=False, progress=False,
          say=said.append)
    assert said == []


class FragileRRAM(memxbar.RRAM):
    """An RRAM whose drift tables cannot be made for read_noise 0.2 at a day."""

    def compile_drift(self, config, t):
        if self.read_noise == 0.2 and t > 3600:
            raise ValueError("no tables for this point")
        return super().compile_drift(config, t)


def test_a_failed_point_is_reported_and_the_rest_completes(threads):
    result = sweep({**TINY, "device": FragileRRAM}, client=threads, **QUIET)
    failed = result.failed
    assert {row["read_noise"] for row in failed} == {0.2} and len(failed) == 3 * 2 * 2
    assert all(row["error"] == "ValueError: no tables for this point" and row["accuracy"] is None
               for row in failed)
    assert all(row["accuracy"] > 0.5 for row in result.rows if row["read_noise"] == 0.05)
    assert "12 point(s) failed, first: ValueError: no tables for this point" in result.summary()


_SEEN = {}  # data arrays a worker process has seen, kept alive so no id is reused


def seen_copies(model, data):
    _SEEN.setdefault(id(data[0]), data[0])
    return {"accuracy": _accuracy(model, data), "data_copies": len(_SEEN)}


def _accuracy(model, data):
    x, y = data
    return float(np.mean(np.argmax(model(x), axis=1) == y))


def small_model():
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(16, 64)), rng.normal(size=16)), (rng.normal(size=(10, 16)), np.zeros(10))]


def digits_data():
    _, x, _, y = load_digits()
    return x[:30], y[:30]


def test_the_payload_is_shipped_once_per_worker(processes):
    result = sweep({**TINY, "samples": None, "seeds": 6, "params": {"read_noise": 0.05}}, client=processes,
                   model=small_model, data=digits_data, evaluate=seen_copies, **QUIET)
    assert not result.failed and len({row["worker"] for row in result.rows}) == 2
    # six tasks on two worker processes: each process holds one copy of the data, however many
    # of the tasks it ran
    assert {row["data_copies"] for row in result.rows} == {1}
    assert result.meta["network"].endswith(":small_model")


def test_your_own_torch_model_and_metric(threads):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 12), torch.nn.ReLU(), torch.nn.Linear(12, 10))

    def evaluate(model, data):
        with torch.no_grad():
            logits = model(torch.as_tensor(data[0], dtype=torch.float32))
        return float(torch.mean(logits.abs()))

    result = sweep({**TINY, "samples": None, "seeds": 2, "params": {}, "device": "pcm"}, client=threads,
                   model=lambda: module, data=digits_data, evaluate=evaluate, **QUIET)
    assert not result.failed and result.metrics == ["accuracy"]
    assert all(row["accuracy"] > 0 for row in result.rows)


def test_bound_workers_each_use_their_own_device():
    with bound_cluster(["model://", "model://"]) as cluster, distributed.Client(cluster) as client:
        result = sweep({**TINY, "seeds": 4}, client=client, backend="worker", **QUIET)
        assert not result.failed and {row["backend"] for row in result.rows} == {"model://"}
        assert len({row["worker"] for row in result.rows}) == 2
        assert result.table() == sweep({**TINY, "seeds": 4}, client=client, **QUIET).table()


def test_workers_with_different_builds_are_refused():
    with bound_cluster(["model://", "model://?rows=32"]) as cluster, distributed.Client(cluster) as client, \
            pytest.raises(ValueError, match="different builds"):
        sweep(TINY, client=client, backend="worker", **QUIET)


def test_unbound_workers_are_named_the_fix(threads):
    with pytest.raises(ValueError, match=r"no worker has a bound device .*MEMXBAR_DEVICE=URL"):
        sweep(TINY, client=threads, backend="worker", **QUIET)


@pytest.mark.parametrize(("text", "seconds"), [("1 s", 1.0), ("1h", 3600.0), ("2 days", 172800.0),
                                               ("1 year", 31536000.0), ("30min", 1800.0), (5, 5.0)])
def test_times_read_as_seconds(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize(("fields", "message"), [
    ({"seeds": 0}, "seeds must be a positive integer or a list of seeds, not 0"),
    ({"times": ["1 fortnight"]}, "time '1 fortnight' is not a number of seconds"),
    ({"times": [-1]}, "time -1 must be a finite time >= 0"),
    ({"times": [3600, "1 h"]}, "times must list distinct drift times, not [3600, '1 h']"),
    ({"compensation": ["drift"]}, "unknown compensation 'drift'"),
    ({"params": {"nu": []}}, "parameter 'nu' has no values"),
    ({"colour": 1}, "unknown grid field(s) 'colour'"),
])
def test_bad_grids_name_the_problem(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Grid.from_dict(fields)


def test_grid_order_and_hash():
    grid = Grid(params={"a": [1, 2], "b": [3]}, seeds=2)
    assert [(t.params, t.seed) for t in grid.tasks()] == [({"a": 1, "b": 3}, 0), ({"a": 1, "b": 3}, 1),
                                                          ({"a": 2, "b": 3}, 0), ({"a": 2, "b": 3}, 1)]
    assert grid.hash() == Grid(params={"a": [5]}, seeds=7).hash()  # coordinates are not in the hash
    assert grid.hash() != Grid(params={"a": [1, 2], "b": [3]}, seeds=2, times=[1]).hash()
    assert grid.hash() != Grid(compensation=["global", "none"]).hash()  # the schedule's order counts


def test_cli_yaml_grid_writes_csv_json_and_plot(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("network: digits-mlp\ndevice: rram\nparams:\n  read_noise: [0.05, 0.2]\nseeds: 2\n"
                    "times: [1 s, 1 day]\ncompensation: [none, global]\nsamples: 30\n")
    out = tmp_path / "run"
    assert main(["sweep", str(grid), "--workers", "1", "--param", "nu=0.05", "--out", str(out), "--quiet",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 * 2 * 2 * 2 and {row["nu"] for row in rows} == {0.05}
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (tmp_path / "run.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["network", "device_model", "read_noise", "nu", "seed", "time_s", "compensation"]
    assert set(PLACEMENT) <= set(header)


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "no_such_knob=1,2"], "device model PCM(no_such_knob=1): "),
    (["--param", "g_max"], "--param 'g_max' must be NAME=V1,V2,..."),
    (["--network", "nowhere:thing"], "network 'nowhere:thing': cannot import 'nowhere'"),
    (["--device", "memristor"], "unknown device 'memristor'"),
    (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"),
])
def test_cli_bad_input_is_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.import_module("memxbar.sweep"), "CONNECT_TIMEOUT_S", 1)
    assert main(["sweep", "--network", "digits-mlp", "--seeds", "1", "--samples", "10", "--quiet",
                 "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_without_dask_the_error_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["sweep", "--quiet"]) == 2
    assert "pip install 'memxbar[sweep]'" in capsys.readouterr().err


def test_a_network_is_pluggable_by_object(threads):
    net = Network("tiny", small_model, digits_data, evaluate=_accuracy)
    result = sweep({**TINY, "samples": 20, "seeds": 1, "params": {"read_noise": 0.05}}, network=net,
                   client=threads, **QUIET)
    assert {row["network"] for row in result.rows} == {"tiny"} and not result.failed


@pytest.mark.verilator
def test_two_simulated_devices_as_bound_workers_give_the_models_table():
    grid = {**TINY, "params": {"read_noise": 0.2, "nu": 0.05}, "seeds": 2, "times": ["1 day"],
            "compensation": ["global"], "samples": 8}
    on_rtl = sweep(grid, devices=["sim://", "sim://"], **QUIET)
    on_model = sweep(grid, workers=1, **QUIET)
    assert not on_rtl.failed and {row["backend"] for row in on_rtl.rows} == {"sim://"}
    # the RTL's rows also count link and clock events (frames_ok, clock, ...), which model:// has not
    assert [{k: row[k] for k in model_row} for row, model_row in zip(on_rtl.table(), on_model.table(),
                                                                     strict=True)] == on_model.table()


def test_cli_on_an_existing_scheduler(processes, tmp_path, capsys):
    """`memxbar sweep GRID --scheduler tcp://...`: the same command, on a cluster it did not start."""
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**TINY, "seeds": 2}))
    address = processes.scheduler.address
    assert address.startswith("tcp://")
    assert main(["sweep", str(grid), "--scheduler", address, "--out", str(tmp_path / "run"), "--quiet",
                 "--plot", "-"]) == 0
    assert "on 2 worker(s)" in capsys.readouterr().out
    rows = json.loads((tmp_path / "run.json").read_text())["rows"]
    local = sweep({**TINY, "seeds": 2}, workers=1, **QUIET)
    assert [{k: v for k, v in row.items() if k not in PLACEMENT} for row in rows] == local.table()


# the main job: the demo's CNN on mnist1d under PCM with aihwkit's sensitivity knobs
CNN = {"network": "mnist1d-cnn", "device": "pcm",
       "params": {"read_noise_scale": [1.0, 3.0], "drift_scale": 2.0},
       "seeds": 2, "times": ["1 day"], "compensation": ["none", "global"], "samples": 100}


def test_the_cnn_gives_the_same_table_on_one_and_two_worker_processes(processes):
    pytest.importorskip("torch")
    pytest.importorskip("mnist1d")
    one = sweep(CNN, workers=1, processes=False, **QUIET)  # one worker in this process, two elsewhere
    two = sweep(CNN, client=processes, **QUIET)
    assert one.table() == two.table() and not one.failed
    assert len(one.rows) == 2 * 2 * 2 and len({row["worker"] for row in two.rows}) == 2
    assert len({row["accuracy"] for row in one.rows}) > 3  # seeds, knobs and compensations tell apart
    from memxbar.demo import RECIPE

    assert one.rows[0]["network"] == f"mnist1d-{RECIPE}" and one.meta["float"]["accuracy"] > 0.8
    # the demo's per-inference MVMs: 20 + 10 + 5 for the convolutions, 2 for the classifier
    assert one.rows[0]["mvms"] == 37 * 100


def test_a_cnn_point_is_the_demos_procedure_on_a_fresh_device(threads):
    torch = pytest.importorskip("torch")
    pytest.importorskip("mnist1d")
    from memxbar.demo import load_mnist1d, trained_cnns
    from memxbar.torch import convert_to_analog

    result = sweep({**CNN, "seeds": [1]}, client=threads, **QUIET)
    float_net, _ = trained_cnns(say=lambda line: None)
    _, _, x, y = load_mnist1d()
    x, y = torch.from_numpy(x[:100]), y[:100]
    with memxbar.open("model://") as dev:
        expected = []
        for scale in (1.0, 3.0):
            analog = convert_to_analog(float_net, dev, memxbar.PCM(read_noise_scale=scale, drift_scale=2.0),
                                       seed=1)
            analog.drift_analog_weights(86400.0)
            for compensation in (None, "global"):
                for layer in analog.analog_layers():
                    layer.compensation = compensation
                with torch.no_grad():
                    expected.append(float(np.mean(analog(x).argmax(dim=1).numpy() == y)))
    assert [row["accuracy"] for row in result.rows] == expected

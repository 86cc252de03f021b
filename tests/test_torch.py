"""The PyTorch bridge: one call converts a CNN; its linear and convolution layers run on tiles."""

import copy
import importlib
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        analog, _ = mtorch.convert(net, dev, memxbar.PCM(), seed=4)
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


def test_drift_changes_the_output():
    """Frozen read noise and no output noise: MVMs repeat exactly, so only drift can change them
    (with per-read noise every call differs, and a drift that did nothing would pass)."""
    net = mlp()
    x = torch.rand(9, 3, 16)
    with memxbar.open("model://") as dev:
        analog, mapping = mtorch.convert(net, dev, memxbar.PCM(out_noise=0.0), seed=4, read_noise="frozen")
        y = analog(x)
        assert torch.equal(analog(x), y), "without drift the outputs must repeat, or the test proves nothing"
        mapping.drift(86400.0)
        drifted = analog(x)
        assert not torch.equal(drifted, y)
        # PCM decays: the uncompensated outputs shrink on average
        assert drifted.abs().mean() < y.abs().mean()


def test_unsupported_layers_are_named_and_norms_stay_digital():
    net = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    with memxbar.open("model://") as dev:
        with pytest.raises(ValueError, match=r"layer 0 \(Conv3d\) has weights that memxbar cannot map"):
            mtorch.convert(net, dev)
        analog, _ = mtorch.convert(net, dev, keep_digital=(nn.Conv3d,))
        assert analog(torch.rand(1, 1, 3, 3, 3)).shape == (1, 2)
        with pytest.raises(ValueError, match=r"layer 1 \(Embedding\)"):
            mtorch.convert(nn.Sequential(nn.Linear(3, 3), nn.Embedding(4, 3)), dev)
        normed = mtorch.convert_to_analog(
            nn.Sequential(nn.Conv1d(1, 3, 3), nn.BatchNorm1d(3), nn.LayerNorm(4)))
        assert [type(m).__name__ for m in normed] == ["AnalogConv1d", "BatchNorm1d", "LayerNorm"]
        with pytest.raises(ValueError, match=r"no nn\.Linear, nn\.Conv1d or nn\.Conv2d"):
            mtorch.convert(nn.Sequential(nn.ReLU()), dev)
        with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
            mtorch.convert(lambda x: x, dev)


# -- convolutions: unfolding onto the mapped matrix -----------------------------------------------


def patches_1d(x, kernel, stride, dilation):
    """``(n, c, length)`` (already padded) -> ``(n, positions, c * kernel)``, written out by hand."""
    n, c, length = x.shape
    positions = (length - dilation * (kernel - 1) - 1) // stride + 1
    taps = np.stack([x[:, :, p * stride + dilation * np.arange(kernel)] for p in range(positions)], axis=1)
    return taps.reshape(n, positions, c * kernel)


def patches_2d(x, kernel, stride, dilation):
    n, c, height, width = x.shape
    rows = (height - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    cols = (width - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    out = np.empty((n, rows * cols, c * kernel[0] * kernel[1]))
    for i in range(rows):
        for j in range(cols):
            ys = i * stride[0] + dilation[0] * np.arange(kernel[0])
            xs = j * stride[1] + dilation[1] * np.arange(kernel[1])
            out[:, i * cols + j] = x[:, :, ys[:, None], xs[None, :]].reshape(n, -1)
    return out, (rows, cols)


def conv_by_hand(dev, conv, x, patches, spatial, seed, read_noise):
    """The same convolution through a Mapping built by hand: one matrix per group, same order."""
    mapping = Mapping(dev, memxbar.PCM(), seed=seed, read_noise=read_noise)
    groups, outs = conv.groups, conv.out_channels // conv.groups
    weight = conv.weight.detach().double().numpy().reshape(conv.out_channels, -1)
    bias = conv.bias.detach().double().numpy()
    layers = [mapping.add(weight[g * outs:(g + 1) * outs], bias[g * outs:(g + 1) * outs])
              for g in range(groups)]
    mapping.program()
    n, positions, features = patches.shape
    flat = patches.reshape(n * positions, features)
    ins = features // groups
    y = np.concatenate([layer(flat[:, g * ins:(g + 1) * ins]) for g, layer in enumerate(layers)], axis=1)
    y = y.reshape(n, positions, conv.out_channels).transpose(0, 2, 1)
    return y.reshape(n, conv.out_channels, *spatial)


@settings(max_examples=12, deadline=None)
@given(kernel=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       padding=st.sampled_from([0, 1, 2, "valid", "same"]), groups=st.sampled_from([1, 2]),
       mode=st.sampled_from(["zeros", "reflect", "circular"]), seed=st.integers(0, 2**32 - 1))
def test_conv1d_is_one_mvm_per_output_position(kernel, stride, dilation, padding, groups, mode, seed):
    if padding == "same":
        stride, kernel = 1, kernel | 1  # torch itself warns on 'same' with an even kernel
    torch.manual_seed(seed % 1000)
    conv = nn.Conv1d(4, 6, kernel, stride, padding, dilation, groups, padding_mode=mode).double()
    x = torch.randn(3, 4, 13, dtype=torch.float64)
    total = dilation * (kernel - 1)
    left, right = ((total // 2, total - total // 2) if padding == "same" else
                   (0, 0) if padding == "valid" else (padding, padding))
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (left, right)),
                    mode={"zeros": "constant", "reflect": "reflect", "circular": "wrap"}[mode])
    patches = patches_1d(padded, kernel, stride, dilation)
    with memxbar.open("model://") as dev, memxbar.open("model://") as twin:
        analog = mtorch.convert_to_analog(conv, dev, memxbar.PCM(), seed=seed)
        with torch.no_grad():
            y = analog(x)
        expected = conv_by_hand(twin, conv, x, patches, (patches.shape[1],), seed, None)
    assert y.shape == conv(x).shape
    assert np.array_equal(y.numpy(), expected)


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"),
                         [(1, 0, 1, 1), (2, 1, 1, 1), ((1, 2), (2, 0), (2, 1), 3), (1, "same", 1, 1)])
def test_conv2d_is_one_mvm_per_output_position(stride, padding, dilation, groups):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 6, (3, 2), stride, padding, dilation, groups).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    if padding == "same":
        total = [d * (k - 1) for k, d in zip((3, 2), pair(dilation), strict=True)]
        pads = [(n // 2, n - n // 2) for n in total]
    else:
        pads = [(p, p) for p in pair(padding)]
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), *pads))
    patches, spatial = patches_2d(padded, (3, 2), pair(stride), pair(dilation))
    with memxbar.open("model://") as dev, memxbar.open("model://") as twin:
        analog = mtorch.convert_to_analog(nn.Sequential(conv), dev, memxbar.PCM(), seed=7,
                                          read_noise="frozen")
        with torch.no_grad():
            y = analog(x)
        expected = conv_by_hand(twin, conv, x, patches, spatial, 7, "frozen")
    with warnings.catch_warnings():  # torch's own 'same' with an even kernel warns that it pads a copy
        warnings.simplefilter("ignore", UserWarning)
        exact = conv(x).detach()
    assert y.shape == exact.shape
    assert np.array_equal(y.numpy(), expected)
    assert (y - exact).abs().max() < 0.25 * exact.abs().max()  # and it is the convolution


def test_a_small_cnn_runs_on_one_tile_close_to_floats():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv1d(1, 8, 5, 2, 2), nn.ReLU(), nn.Conv1d(8, 8, 3, 2, 1), nn.BatchNorm1d(8),
                        nn.ReLU(), nn.Flatten(), nn.Linear(40, 10)).eval()
    x = torch.randn(16, 1, 20)
    with memxbar.open("model://") as dev:
        analog = mtorch.convert_to_analog(net, dev, memxbar.Ideal())
        assert analog.analog_layers()[0].mapping.pages == 1  # three matrices share one 64x64 tile
        with torch.no_grad():
            y, exact = analog(x), net(x)
    assert (y - exact).abs().max() < 0.05 * exact.abs().max()


# -- aihwkit's verbs, copies, devices and state ----------------------------------------------------------


def cnn():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 12, 5))


def test_program_and_drift_on_the_model_or_a_module_act_on_the_shared_tiles():
    net, x = cnn(), torch.randn(4, 2, 12)
    with memxbar.open("model://") as dev, memxbar.open("model://") as twin:
        analog = mtorch.convert_to_analog(net, dev, memxbar.PCM(), seed=5, read_noise="frozen")
        by_hand = mtorch.convert_to_analog(net, twin, memxbar.PCM(), seed=5, read_noise="frozen")
        analog.drift_analog_weights(3600.0)
        by_hand[3].drift_analog_weights(3600.0)  # a module drifts every tile it shares
        assert analog[0].mapping.time == by_hand[0].mapping.time == 3600.0
        with torch.no_grad():
            aged, reference = analog(x), by_hand(x)
        assert torch.equal(aged, reference)
        # new float weights reach the tiles at the next programming, time back to 0
        with torch.no_grad():
            analog[3].weight.mul_(-1.0)
        before = dev.counters()["cell_writes"]
        analog[0].program_analog_weights()
        assert dev.counters()["cell_writes"] > before and analog[3].mapping.time == 0.0
        with torch.no_grad():
            flipped = analog(x)
            digital = mtorch.convert_to_digital(analog)(x)
        assert (flipped - digital).abs().max() < 0.3 * digital.abs().max()
        assert (flipped + reference).abs().max() > 0  # not the old weights' numbers
        assert (flipped - digital).abs().mean() < (reference - digital).abs().mean()


def test_a_deep_copy_is_unbound_and_programs_like_the_original():
    net, x = cnn(), torch.randn(4, 2, 12)
    with memxbar.open("model://") as dev:
        analog = mtorch.convert_to_analog(net, dev, memxbar.PCM(), seed=9, read_noise="frozen")
        with torch.no_grad():
            first = analog(x)
        clone = copy.deepcopy(analog)
        assert all(layer.mapping is None and not layer.programmed for layer in clone.analog_layers())
        assert all(layer.programmed for layer in analog.analog_layers())
        with pytest.raises(ValueError, match=r"not on a device"):
            clone.drift_analog_weights(1.0)
        with torch.no_grad():
            simulated = clone(x)  # unbound: the training simulation, not ideal floats
        assert not torch.equal(simulated, net(x))
        with memxbar.open("model://") as fresh:
            clone.program_analog_weights(fresh)
            with torch.no_grad():
                again = clone(x)
        assert torch.equal(again, first)  # same weights, seed and device: the same numbers


def test_to_moves_digital_parts_and_leaves_the_tiles():
    net, x = cnn(), torch.randn(4, 2, 12)
    with memxbar.open("model://") as dev:
        # frozen read noise and no output noise: every call gives the same numbers
        analog = mtorch.convert_to_analog(net, dev, memxbar.PCM(out_noise=0.0), seed=2, read_noise="frozen")
        with torch.no_grad():
            y32 = analog[0](x)  # one layer: between layers float32 and float64 round differently
            assert torch.equal(analog[0](x), y32)
        writes = dev.counters()["cell_writes"]
        wide = analog.to(torch.float64)
        assert wide is analog and wide[0].weight.dtype == torch.float64 and wide[0].programmed
        with torch.no_grad():
            y64 = wide[0](x.double())
        assert dev.counters()["cell_writes"] == writes  # nothing reprogrammed
        assert y64.dtype == torch.float64 and torch.equal(y64.float(), y32)


@pytest.mark.parametrize("read_noise", ["per_read", "frozen"])
def test_state_dict_reloads_onto_a_fresh_device_with_the_same_next_output(tmp_path, read_noise):
    net, x = cnn(), torch.randn(4, 2, 12)
    with memxbar.open("model://") as dev:
        analog = mtorch.convert_to_analog(net, dev, memxbar.PCM(), seed=11, read_noise=read_noise,
                                          compensation="global")
        with torch.no_grad():  # MVMs between the drifts move the read index
            analog(x)
            analog.drift_analog_weights(3600.0)
            analog(x[:2])
            analog.drift_analog_weights(86400.0)
            analog(x[:3])
        torch.save(analog.state_dict(), tmp_path / "analog.pt")
        with torch.no_grad():
            expected, after = analog(x), analog(x)
    assert not torch.equal(expected, after)  # output noise: every MVM draws afresh
    state = torch.load(tmp_path / "analog.pt", weights_only=True)
    assert [t for t, _ in state["0._extra_state"]["device"]["drifts"]] == [3600.0, 86400.0]
    other = cnn()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)  # different float weights: the reload must bring the saved ones
    with memxbar.open("model://") as fresh:
        reloaded = mtorch.convert_to_analog(other, fresh, memxbar.Ideal(), seed=0)
        reloaded.load_state_dict(state)
        assert isinstance(reloaded[0].device_model, memxbar.PCM) and reloaded[0].seed == 11
        with torch.no_grad():
            assert torch.equal(reloaded(x), expected)
            assert torch.equal(reloaded(x), after)
        assert reloaded[3].mapping.time == 86400.0 and reloaded[3].compensation == "global"
    unbound = mtorch.convert_to_analog(cnn())
    unbound.load_state_dict(state)
    with memxbar.open("model://") as fresh:
        unbound.program_analog_weights(fresh)
        with torch.no_grad():
            assert torch.equal(unbound(x), expected)


def test_a_state_dict_refuses_a_device_model_with_functions():
    custom = memxbar.DeviceModel(prog_sigma=lambda g: 0.1 * g)
    layer = mtorch.AnalogLinear(3, 2, device_model=custom)
    with pytest.raises(ValueError, match=r"has a function prog_sigma"):
        layer.state_dict()


# -- hardware-aware training ------------------------------------------------------------------------------


def test_training_through_the_tiles_never_detaches():
    net, x = cnn(), torch.randn(4, 2, 12)
    conv, weights = net[0], torch.randn(4, 6, 12)
    (conv(x) * weights).sum().backward()
    with memxbar.open("model://") as dev:
        analog = mtorch.convert_to_analog(net, dev, memxbar.PCM(), seed=1).train()
        (analog[0](x) * weights).sum().backward()
        # straight-through: a loss linear in the output has the float layer's gradient exactly
        assert torch.allclose(analog[0].weight.grad, conv.weight.grad)
        assert torch.allclose(analog[0].bias.grad, conv.bias.grad)
        analog.zero_grad()
        analog(x).sum().backward()  # and through the whole model
    assert analog[0].weight.grad.abs().sum() > 0 and analog[3].weight.grad.abs().sum() > 0


def test_unbound_forward_trains_with_the_device_noise_and_straight_through_gradients():
    # without quantisation the weight gradient is exactly the float one (with it, of the DAC's x)
    layer = mtorch.AnalogLinear(16, 8, device_model=memxbar.PCM(),
                                hardware_aware=mtorch.HardwareAware(t=86400.0, quantise=False)).train()
    x = torch.randn(32, 16, requires_grad=True)
    y = layer(x)
    assert not torch.equal(y, layer(x))  # fresh noise every call
    (y * 2.0).sum().backward()
    assert torch.allclose(layer.weight.grad, 2.0 * x.detach().sum(0).expand(8, 16))
    assert torch.allclose(layer.bias.grad, torch.full((8,), 64.0))


def test_training_noise_has_the_tiles_statistics():
    """The float noise of training and the tile's integer noise: same spread and drift, within 3 SE."""
    model = memxbar.PCM(out_noise=0.0)
    weight = np.tile(np.linspace(-1.0, 1.0, 64), (64, 1))
    for t in (0.0, 86400.0 * 365):
        tile_w, sim_w = [], []
        with memxbar.open("model://") as dev:
            tile = dev.tile(0)
            for seed in range(4):
                tile.configure(model, seed=seed, read_noise="frozen")
                tile.program(weight)
                tile.drift(t)  # aihwkit's drift_weights(t), t = 0 included: frozen read noise drawn
                g_plus, g_minus = tile.conductances()
                tile_w.append((g_plus - g_minus) / model.g_max)
            config = dev.info.config
        aware = mtorch.HardwareAware(t=t, out_noise=False)
        eye = torch.eye(64, dtype=torch.float64)
        for _ in range(4):
            sim_w.append(mtorch.noisy_linear(eye, torch.from_numpy(weight), model, config, aware).T.numpy())
        for column in (0, 16, 32, 63):  # weights -1, about -0.5, about 0, 1
            a = np.concatenate([w[:, column] for w in tile_w])
            b = np.concatenate([w[:, column] for w in sim_w])
            se = np.sqrt(a.var() / len(a) + b.var() / len(b))
            assert abs(a.mean() - b.mean()) < 3 * se + 2e-3, (t, column)
            assert 0.8 < b.std() / a.std() < 1.25, (t, column)


def test_layer_events_count_the_cells_of_their_windows():
    conv = nn.Conv1d(3, 7, 4, stride=2, groups=1)
    x = torch.randn(5, 3, 20)
    with memxbar.open("model://") as dev:
        analog = mtorch.convert_to_analog(nn.Sequential(conv), dev, memxbar.PCM(), seed=3)
        before, device_before = analog[0].events(), dev.counters()
        with torch.no_grad():
            analog(x)
        events = {k: v - before[k] for k, v in analog[0].events().items()}
        device = {k: v - device_before[k] for k, v in dev.counters().items()}
    mvms = events["mvms"]
    assert mvms >= 5 * 9  # one per output position, plus bound-management retries
    assert mvms == device["mvms"]  # the device ran exactly these
    cfg = dev.info.config
    assert events["macs"] == mvms * 12 * 7 < device["macs"] == mvms * cfg.rows * cfg.cols
    assert events["adc_conversions"] == mvms * 7 and events["dac_conversions"] == mvms * 12
    assert events["cycles"] == mvms * cfg.cycles_per_mvm

"""Every form of every convolution gives the library's numbers, and tuning picks, keeps and
re-reads its choices."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from latentgen.model import forms, tuning
from latentgen.model.forms import (
    KERNELS,
    TunedConv2d,
    TunedConvTranspose2d,
    candidate_forms,
    compute,
    make_tunable,
    plain_forms,
)
from latentgen.model.nets import UpsamplingGenerator

#: (layer, input shape): transposed and ordinary, 1D/2D/3D, wide and thin, 1x1, the first
#: layer of a vector latent
LAYERS = [
    (lambda: nn.ConvTranspose2d(6, 3, 4, 2, 1), (3, 6, 5, 7)),
    (lambda: nn.ConvTranspose2d(8, 12, 4, 2, 1), (2, 8, 4, 4)),
    (lambda: nn.ConvTranspose2d(5, 2, 8, 4, 2), (2, 5, 3, 4)),
    (lambda: nn.ConvTranspose2d(4, 6, 4, 1, 0), (3, 4, 1, 1)),
    (lambda: nn.ConvTranspose1d(5, 1, 20, 10, 5), (3, 5, 7)),
    (lambda: nn.ConvTranspose1d(3, 4, 4, 2, 1, bias=False), (2, 3, 6)),
    (lambda: nn.ConvTranspose3d(4, 3, (2, 4, 4), (2, 2, 2), (0, 1, 1)), (2, 4, 2, 3, 3)),
    (lambda: nn.Conv2d(6, 3, 3, padding=1), (3, 6, 8, 8)),
    (lambda: nn.Conv2d(6, 9, 1), (3, 6, 5, 4)),
    (lambda: nn.Conv1d(4, 1, 3, padding=1), (2, 4, 16)),
    (lambda: nn.Conv3d(3, 2, 3, padding=1), (2, 3, 3, 4, 4)),
]


def _cases():
    for i, (make, _shape) in enumerate(LAYERS):
        layer = make()
        for mode in ("fp32", "bf16"):
            for form in candidate_forms(layer, mode):
                yield pytest.param(i, mode, form, id=f"{type(layer).__name__}{i}-{mode}-{form}")


@pytest.mark.parametrize("index,mode,form", list(_cases()))
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_form_gives_the_library_values_and_gradients(index, mode, form, channels_last):
    make, shape = LAYERS[index]
    torch.manual_seed(index)
    layer = make()
    make_tunable(layer)
    x = torch.randn(shape)
    if channels_last and x.dim() in (4, 5):
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        x = x.contiguous(memory_format=fmt)
        layer.to(memory_format=fmt)
    x.requires_grad_(True)
    params = [p for p in (layer.weight, layer.bias) if p is not None]
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16"
            else torch.autocast("cpu", enabled=False))
    with cast:
        y = compute(layer, x, form)
        with plain_forms():
            want = layer(x)
    assert y.shape == want.shape
    g = torch.randn(want.shape)
    got_grads = torch.autograd.grad(y.float(), (x, *params), g)
    want_grads = torch.autograd.grad(want.float(), (x, *params), g)
    tol = dict(rtol=1e-4, atol=1e-4) if mode == "fp32" else dict(rtol=0.05, atol=0.05)
    torch.testing.assert_close(y.float(), want.float(), **tol)
    for a, b in zip(got_grads, want_grads):
        scale = b.abs().max().clamp_min(1.0)
        torch.testing.assert_close(a / scale, b / scale, **tol)
    # the state dict is the plain layer's: checkpoints do not change
    assert set(layer.state_dict()) == {"weight", "bias"} if layer.bias is not None else {
        "weight"}


def test_kept_weights_follow_an_update_of_the_master_weights():
    torch.manual_seed(0)
    layer = TunedConvTranspose2d(4, 3, 4, 2, 1)
    x = torch.randn(2, 4, 5, 5)
    layer.requires_grad_(False)  # as in Langevin inference: derived weights are kept
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = compute(layer, x, "phases/bf16")
        assert torch.equal(compute(layer, x, "phases/bf16"), first)
        with torch.no_grad():
            layer.weight.mul_(2.0)  # an optimizer step is in place too
        second = compute(layer, x, "phases/bf16")
        with plain_forms():
            want = layer(x)
    torch.testing.assert_close(second.float(), want.float(), rtol=0.05, atol=0.05)
    assert not torch.allclose(second.float(), first.float())


def test_untuned_layers_take_the_default_forms():
    thin = TunedConvTranspose2d(8, 3, 4, 2, 1)
    wide = TunedConvTranspose2d(8, 16, 4, 2, 1)
    x = torch.randn(1, 8, 4, 4)
    assert thin.form_for(x) == "phases" and wide.form_for(x) == "library"
    with plain_forms():
        assert thin.form_for(x) == "library"


def test_make_tunable_keeps_a_third_party_generator_whole():
    net = nn.Sequential(nn.ConvTranspose2d(4, 8, 4, 1, 0), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    z = torch.randn(2, 4, 1, 1)
    want = net(z)
    names = [name for name, _ in make_tunable(net)]
    assert names == ["0", "2"]
    assert isinstance(net[0], forms.TunedLayer) and isinstance(net[2], TunedConv2d)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    torch.testing.assert_close(net(z), want, rtol=1e-5, atol=1e-5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "forms.json"
    monkeypatch.setenv(tuning.CACHE_VARIABLE, str(path))
    monkeypatch.delenv(tuning.FORMS_VARIABLE, raising=False)
    tuning.forget()
    yield path
    tuning.forget()


def _generator(design="convt"):
    torch.manual_seed(0)
    return UpsamplingGenerator(2, 4, 3, 4, [2, 2], [16, 8], design=design)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tune_measures_once_then_reads_the_cache(cache, monkeypatch, precision):
    gen = _generator()
    z = torch.randn(8, 4)
    with torch.no_grad(), tuning._autocast(torch.device("cpu"), precision):
        want = gen(z).float()
    choices = tuning.tune(gen, z, torch.device("cpu"), precision)
    layers = dict(tuning.tuned_layers(gen))
    assert [c.layer for c in choices] == list(layers)  # every convolution on the path
    for c in choices:
        assert not c.cached and c.times_ms, c
        # the chosen form was measured, and is at least as fast as the default within margin
        assert c.form in c.times_ms or c.form == forms.default_form(layers[c.layer],
                                                                     torch.empty(c.shape))
        assert c.signature is not None and layers[c.layer].forms[c.signature] == c.form
    stored = json.loads(cache.read_text())
    assert len(stored) == len(choices) and all(f"|{precision}|" in k for k in stored)
    with torch.no_grad(), tuning._autocast(torch.device("cpu"), precision):
        got = gen(z).float()  # the tuned generator computes the same function
    tol = 1e-4 if precision == "fp32" else 0.05
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)

    # a new process (the file only) and a fresh generator: nothing is timed again
    tuning.forget()
    monkeypatch.setattr(tuning, "_measure", lambda *a, **k: pytest.fail("measured again"))
    again = tuning.tune(_generator(), z, torch.device("cpu"), precision)
    assert [(c.layer, c.form, c.cached) for c in again] == [(c.layer, c.form, True)
                                                           for c in choices]


def test_a_choice_that_does_not_beat_the_default_by_the_margin_is_not_taken(cache, monkeypatch):
    gen = _generator()

    def measured(layer, x, candidates, device, precision):
        # every other form a hair faster than the default: noise, not a reason to switch
        base = forms.default_form(layer, x)
        return {f: (1.0 if f == base else 0.97) for f in candidates}

    monkeypatch.setattr(tuning, "_measure", measured)
    choices = tuning.tune(gen, torch.randn(4, 4), torch.device("cpu"))
    layers = dict(tuning.tuned_layers(gen))
    assert all(c.form == forms.default_form(layers[c.layer], torch.empty(c.shape))
               for c in choices)


def test_a_wrong_form_is_never_chosen(cache, monkeypatch):
    gen = _generator()
    wrong = forms.Kernel("wrong", "gives zeros fast", lambda layer: True,
                         lambda layer, x, w, b: torch.zeros_like(forms._library(layer, x, w, b)))
    monkeypatch.setitem(KERNELS, "wrong", wrong)
    choices = tuning.tune(gen, torch.randn(4, 4), torch.device("cpu"))
    assert choices and all(c.form != "wrong" and "wrong" not in c.times_ms for c in choices)


def test_the_variable_turns_tuning_off_or_to_the_library(cache, monkeypatch):
    gen = _generator()
    monkeypatch.setenv(tuning.FORMS_VARIABLE, "default")
    assert tuning.tune(gen, torch.randn(4, 4), torch.device("cpu")) == []
    monkeypatch.setenv(tuning.FORMS_VARIABLE, "library")
    choices = tuning.tune(gen, torch.randn(4, 4), torch.device("cpu"))
    assert choices and {c.form for c in choices} == {"library"}
    assert not cache.exists()
    monkeypatch.setenv(tuning.FORMS_VARIABLE, "fastest")
    from latentgen.errors import UserError

    with pytest.raises(UserError, match="LATENTGEN_FORMS"):
        tuning.tune(gen, torch.randn(4, 4), torch.device("cpu"))


def test_choices_move_to_another_copy(cache):
    gen, other = _generator(), _generator()
    choices = tuning.tune(gen, torch.randn(4, 4), torch.device("cpu"))
    tuning.apply_choices(other, choices)
    mine, theirs = dict(tuning.tuned_layers(gen)), dict(tuning.tuned_layers(other))
    assert all(theirs[name].forms == layer.forms for name, layer in mine.items())


def test_auto_precision_is_measured(cache, monkeypatch):
    gen, z, cpu = _generator(), torch.randn(4, 4), torch.device("cpu")
    monkeypatch.setattr(tuning, "bf16_supported", lambda device: False)
    assert tuning.auto_precision(gen, z, cpu) == ("fp32",
                                                  "auto: this device has no bf16 arithmetic")
    monkeypatch.setattr(tuning, "bf16_supported", lambda device: True)
    for fp32_s, bf16_s, chosen in ((2.0, 1.0, "bf16"), (1.0, 0.95, "fp32"),
                                   (1.0, 2.0, "fp32")):
        tuning.forget()
        cache.unlink(missing_ok=True)
        monkeypatch.setattr(tuning, "langevin_step_seconds",
                            lambda g, z, d, p, a=fp32_s, b=bf16_s: a if p == "fp32" else b)
        got, why = tuning.auto_precision(gen, z, cpu)
        assert got == chosen and why.startswith(f"auto: {chosen}") and "as fast" in why, why
        assert f"{bf16_s * 1e3:.1f} ms in bf16 against {fp32_s * 1e3:.1f} ms in fp32" in why


def test_channels_first_kernel_runs_under_vmap_on_channels_last_inputs():
    """The likelihood's Jacobians (torch.func.vmap) may feed a channels-first kernel the
    channels-last output of a layer whose weights were prepared channels-last; a layout
    cannot be asked for under vmap, so the kernel keeps the plain one there."""
    from torch.func import jacfwd, vmap

    conv = nn.Conv2d(8, 8, 3, padding=1)
    prepared = conv.weight.detach().contiguous(memory_format=torch.channels_last)

    def f(v: torch.Tensor) -> torch.Tensor:
        x = v.view(1, 8, 1, 1).expand(1, 8, 4, 4)
        y = torch.nn.functional.conv2d(x, prepared, None, 1, 1)  # channels-last output
        return forms._channels_first(conv, y, conv.weight, conv.bias).sum()

    z = torch.randn(3, 8)
    jac = vmap(jacfwd(f))(z)
    expected = torch.stack([torch.func.jacfwd(f)(v) for v in z])
    assert torch.allclose(jac, expected, atol=1e-5)

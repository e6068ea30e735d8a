"""wrap(): any nn.Module as an AudioModel, sites read and replaced by forward hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, Site, SiteError
from ontoscope.models.wrap import wrap


def toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 4, 8, stride=4),   # 0
        nn.ReLU(),                      # 1
        nn.Conv1d(4, 6, 3, stride=2),   # 2
        nn.Tanh(),                      # 3
        nn.Conv1d(6, 2, 1),             # 4: linear in its input
    ).eval()


SITES = {"conv0": "0", "relu": "1", "conv1": "2", "tanh": "3"}


@pytest.fixture
def model():
    return wrap(toy(), SITES, sample_rate=8000, output="embedding", preprocess=lambda a: a.unsqueeze(1))


@pytest.fixture
def audio():
    return torch.randn(3, 400, generator=torch.Generator().manual_seed(1))


def test_encode_is_the_intermediate_output(model, audio):
    net = model.module
    x = audio.unsqueeze(1)
    with torch.no_grad():
        expected = {"conv0": net[0](x)}
        expected["relu"] = net[1](expected["conv0"])
        expected["conv1"] = net[2](expected["relu"])
        expected["tanh"] = net[3](expected["conv1"])
        for name, want in expected.items():
            torch.testing.assert_close(model.encode(audio, name), want, rtol=0, atol=0)


def test_encode_stops_at_the_site(model, audio):
    calls: list[str] = []
    for i, m in enumerate(model.module):
        m.register_forward_hook(lambda *_, i=i: calls.append(str(i)))
    model.encode(audio, "relu")
    assert calls == ["0", "1"]


def test_resume_with_captured_activations_is_the_forward(model, audio):
    with torch.no_grad():
        full = model.module(audio.unsqueeze(1))
        for name in SITES:
            torch.testing.assert_close(model.resume(model.encode(audio, name), name), full, rtol=0, atol=0)
        torch.testing.assert_close(model(audio), full)


def test_resume_with_edited_activations(model, audio):
    net = model.module
    with torch.no_grad():
        acts = model.encode(audio, "tanh")
        base = model.resume(acts, "tanh")
        # the last layer is affine: adding d to the tanh output adds W d to the output at every frame
        d = torch.zeros_like(acts)
        d[:, 2] = 0.5
        moved = model.resume(acts + d, "tanh")
        expected_shift = 0.5 * net[4].weight[:, 2, 0]
        torch.testing.assert_close(moved - base, expected_shift.view(1, 2, 1).expand_as(base), atol=1e-6, rtol=0)
        # zeroing the ReLU output leaves only the biases to propagate
        zero = model.resume(torch.zeros_like(model.encode(audio, "relu")), "relu")
        b = net[4](net[3](net[2].bias.view(1, 6, 1))).expand_as(zero)
        torch.testing.assert_close(zero, b, atol=1e-6, rtol=0)
        # other frame counts are fine: the replacement decides the rest of the pass
        short = model.resume(acts[..., :5], "tanh")
    assert short.shape == (3, 2, 5)


def test_resume_gradients_reach_the_activations(model, audio):
    tracked: list[bool] = []
    model.module[0].register_forward_hook(lambda _m, _i, out: tracked.append(out.requires_grad))
    acts = model.encode(audio, "relu").detach().requires_grad_(True)
    out = model.resume(acts, "relu")
    out.sum().backward()
    assert acts.grad is not None and acts.grad.abs().sum() > 0
    assert tracked == [True, False]  # encode built a graph; resume ran the discarded prefix without one
    with torch.no_grad():
        again = model.resume(acts, "relu")
    assert not again.requires_grad  # and a caller's no_grad is kept after the site


def test_resume_with_the_original_audio_for_skip_connections(audio):
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv1d(1, 3, 5, padding=2)
            self.b = nn.Conv1d(3, 3, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.b(h) + h  # the output also reads the site before "b"

    model = wrap(Skip(), {"a": "a", "b": "b"}, sample_rate=8000, preprocess=lambda a: a.unsqueeze(1))
    with torch.no_grad():
        full = model(audio)
        acts = model.encode(audio, "b")
        torch.testing.assert_close(model.resume(acts, "b", audio=audio), full)
        assert not torch.allclose(model.resume(acts, "b"), full)  # silence upstream: the skip path differs


def test_sites_are_described(model):
    sites = model.sites()
    assert [s.name for s in sites] == list(SITES)
    assert [(s.layout, s.channels) for s in sites] == [("BCT", 4), ("BCT", 4), ("BCT", 6), ("BCT", 6)]
    assert isinstance(model, AudioModel) and model.sample_rate == 8000 and model.output == "embedding"
    declared = Site("low", "BCT", 4, stride=4, receptive_field=8, notes={"module": "0"})
    m2 = wrap(toy(), {"low": declared}, sample_rate=8000, preprocess=lambda a: a.unsqueeze(1))
    assert m2.site("low").stride == 4 and m2.site("low").receptive_field == 8


def test_unknown_site_and_module_path(model, audio):
    with pytest.raises(SiteError, match="unknown site 'conv9'.*conv0, relu, conv1, tanh"):
        model.encode(audio, "conv9")
    with pytest.raises(SiteError):
        model.resume(torch.zeros(1, 4, 3), "nope")
    with pytest.raises(ConfigError, match="module path '7' does not exist"):
        wrap(toy(), {"x": "7"}, sample_rate=8000)
    with pytest.raises(ConfigError, match="did you mean"):
        wrap(nn.Sequential(nn.Sequential(nn.Linear(2, 2))), {"x": "0.O"}, sample_rate=8000)
    with pytest.raises(ConfigError, match="sample_rate"):
        wrap(toy(), SITES, sample_rate=0)
    with pytest.raises(ConfigError, match="output must be"):
        wrap(toy(), SITES, sample_rate=8000, output="logits")
    with pytest.raises(ConfigError, match="at least one site"):
        wrap(toy(), {}, sample_rate=8000)


def test_decode(audio):
    net = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.Conv1d(2, 1, 3, padding=1)).eval()
    ae = wrap(net, {"mid": "0"}, sample_rate=8000, output="audio", preprocess=lambda a: a.unsqueeze(1),
              postprocess=lambda y: y.squeeze(1))
    emb = wrap(net, {"mid": "0"}, sample_rate=8000, output="embedding", preprocess=lambda a: a.unsqueeze(1))
    voc = wrap(net, {"mid": "0"}, sample_rate=8000, output="spectrogram", preprocess=lambda a: a.unsqueeze(1),
               decode=lambda y: 2 * y.squeeze(1))
    with torch.no_grad():
        acts = ae.encode(audio, "mid")
        torch.testing.assert_close(ae.decode(acts, "mid"), net(audio.unsqueeze(1)).squeeze(1))
        assert ae.decode(acts, "mid").shape == audio.shape
        assert emb.decode(acts, "mid") is None
        torch.testing.assert_close(voc.decode(acts, "mid"), 2 * net(audio.unsqueeze(1)).squeeze(1))

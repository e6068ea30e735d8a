"""Site names follow one scheme everywhere: the name starts with the site's role, roles come in forward order.

``encoder.*`` < ``bottleneck`` < ``quantizer`` < ``decoder.*`` < ``head`` (``head.*``); at most one bottleneck
and one quantizer, named by the bare role or ``role.<name>``; names unique (``docs/models.md``, "Site names").
"""

from __future__ import annotations

import pytest
import torch

from ontoscope.models.family import build
from ontoscope.models.protocol import Site
from ontoscope.models.registry import load_model
from ontoscope.models.spec import parse_spec
from tests.hf_small import SMALL

ORDER = ("encoder", "bottleneck", "quantizer", "decoder", "head")

FAMILY = {
    "conv_ae": dict(family="conv_ae", strides=[2, 2], width=4, depth=0, bottleneck=4),
    "conv_ae+quantizer": dict(family="conv_ae", strides=[2, 2], width=4, depth=0, bottleneck=4,
                              quantizer=dict(codebooks=2, size=8)),
    "tcn": dict(family="tcn", width=4, depth=2, bottleneck=4),
    "spec_cnn autoencoder": dict(family="spec_cnn", width=4, n_fft=256, hop=64, n_mels=32, pool=[(2, 2), (2, 2)]),
    "spec_cnn encoder": dict(family="spec_cnn", mode="encoder", width=4, n_fft=256, hop=64, n_mels=32,
                             pool=[(2, 2), (2, 2)], factors=["f0", "loudness"]),
}

#: The packaged real models (published weights, loaded from the installed packages; nothing is downloaded).
PACKAGED = ["crepe:tiny", "fcpe", "basic-pitch", "silero-vad", "resemblyzer", "pesto"]



def check_scheme(sites: list[Site]) -> None:
    """Every name starts with its role (or is the role), roles in forward order, one bottleneck and one
    quantizer at most, names unique."""
    names = [s.name for s in sites]
    assert sites and len(set(names)) == len(names), names
    for s in sites:
        assert s.role in ORDER, (s.name, s.role)
        assert s.name == s.role or s.name.startswith(f"{s.role}."), (s.name, s.role)
    ranks = [ORDER.index(s.role) for s in sites]
    assert ranks == sorted(ranks), [(s.name, s.role) for s in sites]
    for single in ("bottleneck", "quantizer"):
        assert sum(s.role == single for s in sites) <= 1, names
    quantizers = [i for i, s in enumerate(sites) if s.role == "quantizer"]
    if quantizers:  # a quantizer quantizes the bottleneck right before it
        assert sites[quantizers[0] - 1].role == "bottleneck", names


@pytest.mark.parametrize("name", list(FAMILY))
def test_family_sites_follow_the_scheme(name):
    model = build(parse_spec(FAMILY[name]), seed=0)
    sites = model.sites()
    check_scheme(sites)
    assert "bottleneck" in [s.name for s in sites]
    assert ("quantizer" in [s.name for s in sites]) == (name == "conv_ae+quantizer")
    assert any(s.role == "decoder" for s in sites) == (name != "spec_cnn encoder")


def test_planted_and_control_sites_follow_the_scheme():
    from ontoscope.models.controls import PlaceControl, WaveformControl
    from ontoscope.stimuli.factors import FactorSpace

    planted = load_model("planted")
    check_scheme(planted.sites())
    assert [s.name for s in planted.sites()] == ["encoder.factors", "bottleneck"]
    check_scheme(WaveformControl().sites())
    check_scheme(PlaceControl(FactorSpace.create(["f0", "loudness"])).sites())


def test_controller_sites_follow_the_scheme():
    from ontoscope.models.controls import ControllerModel
    from ontoscope.stimuli.factors import FactorSpace

    sites = ControllerModel(FactorSpace.create(["f0", "loudness"]), trained=False).sites()
    check_scheme(sites)
    assert [s.name for s in sites] == ["encoder.hidden0", "bottleneck"]


def test_supervised_control_sites_follow_the_scheme():
    from ontoscope.models.controls import SupervisedControl
    from ontoscope.stimuli.factors import FactorSpace

    sites = SupervisedControl(FactorSpace.create(["f0", "loudness"]), steps=0, clips=10).sites()
    check_scheme(sites)
    assert [s.name for s in sites] == ["encoder.block0", "encoder.block1", "encoder.block2", "bottleneck"]
    assert [s.stride for s in sites] == [4, 16, 64, 64]


@pytest.mark.parametrize("ref", PACKAGED)
def test_packaged_model_sites_follow_the_scheme(ref):
    sites = load_model(ref).sites()
    check_scheme(sites)
    assert sites[-1].role == "head" and all(s.role == "encoder" for s in sites[:-1])


@pytest.mark.slow  # importing transformers alone takes seconds
@pytest.mark.parametrize("name", list(SMALL))
def test_hf_architecture_sites_follow_the_scheme(name):
    model = load_model(f"hf:{name}", seed=0, overrides=SMALL[name])
    sites = model.sites()
    check_scheme(sites)
    roles = {s.role for s in sites}
    if model.output == "audio":  # the codecs: the latent before and after the quantizer
        assert {"bottleneck", "quantizer"} <= {s.name for s in sites} and "decoder" in roles
    else:
        assert roles == {"encoder"}


def test_a_wrapped_site_takes_its_role_from_a_name_in_the_scheme():
    from ontoscope.models.wrap import role_from_name, wrap

    net = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv1d(4, 4, 1),
                              torch.nn.Conv1d(4, 1, 3))
    model = wrap(net, {"encoder.conv": "0", "relu": "1", "bottleneck": "2", "head": "3"}, sample_rate=8000,
                 preprocess=lambda a: a.unsqueeze(1))
    assert [s.role for s in model.sites()] == ["encoder", "layer", "bottleneck", "head"]
    assert role_from_name("decoder.block3") == "decoder" and role_from_name("encoders.x") == "layer"
    declared = Site("mine", "BCT", 4, role="bottleneck", notes={"module": "2"})
    assert wrap(net, {"mine": declared}, sample_rate=8000).site("mine").role == "bottleneck"

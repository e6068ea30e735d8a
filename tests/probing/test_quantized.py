"""Interventions before a quantizer: retention known by construction."""

import numpy as np
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec
from ontoscope.probing.quantized import quantizer_after, quantizer_retention

SPEC = dict(family="conv_ae", strides=[2, 2], width=4, depth=0, bottleneck=2, quantizer=dict(codebooks=1, size=4))


@pytest.fixture(scope="module")
def model():
    return build(parse_spec(SPEC), seed=0).eval()


@pytest.fixture(scope="module")
def audio():
    return torch.randn(3, 800, generator=torch.Generator().manual_seed(0)) * 0.1


def test_next_quantizer_is_found(model):
    assert quantizer_after(model, "bottleneck") == "quantizer"
    assert quantizer_after(model, "encoder.block0") is None


def test_a_tiny_edit_is_undone_and_a_codeword_step_is_kept(model, audio):
    """With one codebook, a frame's quantized value is its nearest codeword. An edit far smaller than the gaps
    between codewords snaps back (retained 0, no code changes); moving every frame by a huge step along a
    direction lands every frame on the codeword furthest along it, so the codes change and the retained
    fraction is the codeword offset divided by the step."""
    books = model.quantizer.codebooks.detach()[0]  # [size, D]
    d = np.array([1.0, 0.0], dtype=np.float32)
    tiny = quantizer_retention(model, audio, "bottleneck", d * 1e-6, magnitudes=[1.0]).iloc[0]
    assert tiny["retained"] == 0.0 and tiny["codes_changed"] == 0.0
    assert (tiny["site"], tiny["role"], tiny["quantizer"]) == ("bottleneck", "bottleneck", "quantizer")
    with torch.no_grad():
        q0 = model.encode(audio, "quantizer")
    step = 1e4
    big = quantizer_retention(model, audio, "bottleneck", d, magnitudes=[step]).iloc[0]
    far = books[books[:, 0].argmax()]  # the codeword furthest along d
    expected = float((far[0] - q0[:, 0]).mean()) / step
    assert big["retained"] == pytest.approx(expected, rel=1e-4)
    assert big["codes_changed"] > 0


def test_bad_input(model, audio):
    with pytest.raises(ConfigError, match="not followed by a quantizer"):
        quantizer_retention(model, audio, "encoder.block0", np.ones(4))
    with pytest.raises(ConfigError, match="2 channels"):
        quantizer_retention(model, audio, "bottleneck", np.ones(3))
    with pytest.raises(ConfigError, match="non-zero"):
        quantizer_retention(model, audio, "bottleneck", np.ones(2), magnitudes=[0.0])

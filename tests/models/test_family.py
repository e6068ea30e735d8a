import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ontoscope.errors import ConfigError
from ontoscope.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ontoscope.models.family import build
from ontoscope.models.losses import multi_resolution_stft_loss
from ontoscope.models.spec import load_spec, parse_spec
from ontoscope.models.train import autocast, history_table, loss_fn, parse_config, train
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

SPECS = [
    dict(family="conv_ae", strides=[2, 4], width=4, depth=1, bottleneck=8),
    dict(family="conv_ae", strides=[3, 5], width=4, depth=2, kernel=7, bottleneck=4, antialias="blur"),
    dict(family="conv_ae", strides=[2, 2, 2], width=4, depth=0, bottleneck=2, quantizer=dict(codebooks=2, size=8)),
    dict(family="conv_ae", strides=[2, 4], width=4, depth=1, compression=4, activation="snake"),
    dict(family="tcn", width=4, depth=3),
    dict(family="tcn", width=4, depth=2, decimation=4, kernel=5),
    dict(family="spec_cnn", width=4, pool=[(2, 2), (2, 4)], n_fft=256, hop=64, n_mels=32),
    dict(family="spec_cnn", width=4, frontend="stft", n_fft=128, hop=32, pool=[(3, 1), (2, 2)], mode="encoder",
         factors=["f0", "loudness"]),
]


@pytest.mark.parametrize("d", SPECS, ids=lambda d: d["family"] + "-" + str(len(d)))
@pytest.mark.parametrize("length", [1600, 2003, 4100])
def test_site_shapes_follow_the_stride_and_resume_equals_forward(d, length):
    spec = parse_spec(d)
    model = build(spec).eval()
    audio = torch.randn(2, length)
    with torch.no_grad():
        out = model(audio)
        for site in model.sites():
            acts = model.encode(audio, site.name)
            assert acts.shape[1] == site.channels
            if spec.family == "spec_cnn":
                pool = spec.total_stride // spec.hop
                frames = math.ceil((1 + length // spec.hop) / pool) * pool  # padded to the time pooling
                assert acts.shape[-1] == frames * spec.hop // site.stride
                assert acts.ndim == 4 and acts.shape[2] == site.freq_bins
            else:
                assert acts.ndim == 3 and acts.shape[-1] == math.ceil(length / spec.total_stride) * (
                    spec.total_stride // site.stride)
            torch.testing.assert_close(model.resume(acts, site.name), out)
    if model.output == "audio":
        assert out.shape == (2, math.ceil(length / spec.total_stride) * spec.total_stride)


def test_same_seed_same_weights():
    spec = parse_spec(SPECS[0])
    a, b, c = build(spec, seed=1), build(spec, seed=1), build(spec, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.stages[0][0].weight, c.stages[0][0].weight)


def test_quantizer_quantizes_to_codebook_sums():
    model = build(parse_spec(SPECS[2])).eval()
    z = model.encode(torch.randn(1, 800), "bottleneck")
    zq = model.encode(torch.randn(1, 800) * 0 + 0, "quantizer")
    q = model.quantizer
    q(z)
    books = q.codebooks.detach()
    rebuilt = sum(books[i][q.codes[0, i]] for i in range(books.shape[0])).T
    torch.testing.assert_close(q(z)[0], rebuilt)
    assert zq.shape == z.shape


@pytest.mark.parametrize(
    "d, message",
    [
        (dict(family="conv_ae", strides=[2, 0]), "strides"),
        (dict(family="conv_ae", strides=[]), "strides"),
        (dict(family="conv_ae", bottleneck=0), "bottleneck"),
        (dict(family="transformer"), "unknown family"),
        (dict(family="conv_ae", widht=8), "widht"),
        (dict(family="spec_cnn", mode="encoder"), "factors"),
        (dict(family="spec_cnn", mode="encoder", factors=["pitchiness"]), "unknown factor"),
        (dict(family="spec_cnn", hop=1024, n_fft=512), "hop"),
        (dict(family="tcn", depth=0), "depth"),
        (dict(family="conv_ae", strides=[4, 4], compression=4, bottleneck=4), "or compression .*not both"),
        (dict(family="conv_ae", strides=[4, 4], compression=3), "compression 3 gives 5.33333 latent channels"),
        (dict(family="conv_ae", strides=[4, 4], compression=32), "compression 32 gives 0.5 latent channels"),
        (dict(family="conv_ae", strides=[4, 4], compression="lots"), "compression must be a positive number"),
        (dict(family="conv_ae", activation="relu"), "activation"),
    ],
)
def test_bad_specs(d, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(d)


def test_compression_sets_the_bottleneck_and_every_spec_reports_it():
    """Compression is input samples per latent float: total stride / bottleneck (times the bins at a 2-D
    bottleneck); giving it sets the bottleneck, and the spec written back holds the bottleneck alone."""
    from ontoscope.models.spec import spec_to_dict

    for strides in ([4, 4, 4], [4, 4, 4, 4], [4, 4, 4, 4, 4]):
        spec = parse_spec(dict(family="conv_ae", strides=strides, compression=16))
        assert spec.bottleneck == math.prod(strides) // 16 and spec.compression == 16
        assert parse_spec(spec_to_dict(spec)) == spec and "compression" not in spec_to_dict(spec)
    model = build(parse_spec(dict(family="conv_ae", strides=[4, 4], width=4, compression=2)))
    floats = model.encode(torch.randn(1, 1600), "bottleneck").numel()
    assert 1600 / floats == 2  # measured: input samples per latent float
    cnn = parse_spec(dict(family="spec_cnn", width=4, n_fft=256, hop=64, n_mels=32, pool=[(2, 2), (2, 4)],
                          compression=8))
    acts = build(cnn).encode(torch.randn(1, 64 * 8 * 10), "bottleneck")
    assert cnn.bottleneck_bins == acts.shape[2] == 8 and cnn.bottleneck == acts.shape[1] == 8
    assert cnn.compression == cnn.total_stride / (acts.shape[1] * acts.shape[2]) == 8  # 512 samples per frame
    assert parse_spec(dict(family="tcn", bottleneck=4, decimation=4)).compression == 1


def test_quantizer_bitrate_is_codebooks_times_bits_times_frame_rate():
    spec = parse_spec(dict(family="conv_ae", strides=[4, 4, 4, 5], bottleneck=16,
                           quantizer=dict(codebooks=8, size=1024)))
    assert spec.bitrate == 8 * 10 * 16000 / 320  # 4 kbit/s at 50 frames/s
    assert parse_spec(dict(family="conv_ae")).bitrate is None and parse_spec(dict(family="tcn")).bitrate is None


def test_snake_is_x_plus_sin_squared_over_alpha_with_a_learnt_alpha_per_channel():
    from ontoscope.models.layers import Snake1d

    snake = Snake1d(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.5, 1.0, 4.0]).view(1, 3, 1))
    x = torch.linspace(-3, 3, 11).expand(2, 3, 11)
    a = torch.tensor([0.5, 1.0, 4.0]).view(1, 3, 1)
    torch.testing.assert_close(snake(x), x + torch.sin(a * x) ** 2 / a)
    snake(x).sum().backward()
    assert snake.alpha.grad is not None and snake.alpha.grad.shape == (1, 3, 1)
    model = build(parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, activation="snake")))
    assert sum(isinstance(m, Snake1d) for m in model.modules()) > 0
    assert not any(isinstance(m, torch.nn.ELU) for m in model.modules())


def test_spec_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("family: conv_ae\nstrides: [2, 4]\nbottleneck: 8\n")
    assert load_spec(tmp_path / "a.yaml").total_stride == 8
    (tmp_path / "b.yaml").write_text("family: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "set"
    space = FactorSpace.create(["f0", "loudness", "brightness"])
    return StimulusSet.synthesize(root, space, 40, 16000, 0.25, seed=0, progress=False)


def test_training_lowers_held_out_loss(tiny_set, tmp_path):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4], width=8, bottleneck=16))
    _, card = train(spec, tiny_set, tmp_path / "ck", dict(steps=60, batch_size=8, warmup=5, eval_every=30),
                    progress=False)
    h = history_table(card).dropna(subset=["eval_loss"])
    first, last = h["eval_loss"].iloc[0], h["eval_loss"].iloc[-1]
    # measured: about 3.2 at initialisation to about 2.1 after 60 steps
    assert last < 0.8 * first
    model, card2 = load_checkpoint(tmp_path / "ck")
    assert card2["step"] == 60 and card2["final"]


def test_resume_equals_uninterrupted(tiny_set, tmp_path):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4,
                           quantizer=dict(codebooks=2, size=8)))
    cfg = dict(steps=12, batch_size=4, warmup=2, eval_every=4, checkpoint_every=4)
    full, _ = train(spec, tiny_set, tmp_path / "a", cfg, progress=False)
    train(spec, tiny_set, tmp_path / "b", cfg, progress=False, stop_after=5)
    resumed, card = train(spec, tiny_set, tmp_path / "b", cfg, progress=False)
    assert card["step"] == 12
    for (k, x), y in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_supervised_encoder_learns_loudness(tiny_set, tmp_path):
    spec = parse_spec(dict(family="spec_cnn", width=8, pool=[(2, 2), (2, 2)], n_fft=256, hop=64, n_mels=32,
                           mode="encoder", factors=["loudness"]))
    _, card = train(spec, tiny_set, tmp_path / "enc", dict(steps=80, batch_size=8, warmup=5, eval_every=40, lr=3e-3),
                    progress=False)
    h = history_table(card).dropna(subset=["eval_loss"])
    assert h["eval_loss"].iloc[-1] < 0.5 * h["eval_loss"].iloc[0]


def test_checkpoint_errors(tiny_set, tmp_path):
    spec = parse_spec(SPECS[0])
    model = build(spec)
    save_checkpoint(tmp_path / "ck", model, {"step": 0})
    with pytest.raises(CheckpointError, match="another spec"):
        load_checkpoint(tmp_path / "ck", spec=parse_spec(dict(SPECS[0], bottleneck=9)))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(tmp_path / "weights.pt")
    # a pickle disguised as safetensors is refused, not unpickled
    (tmp_path / "ck" / "model.safetensors").write_bytes((tmp_path / "weights.pt").read_bytes())
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="no card.json"):
        load_checkpoint(tmp_path)
    other = build(parse_spec(dict(SPECS[0], width=8)))
    from ontoscope.models.checkpoint import save_tensors

    save_tensors(tmp_path / "ck" / "model.safetensors", other.state_dict())
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(ConfigError, match="Hz"):
        train(parse_spec(dict(SPECS[0], sample_rate=8000)), tiny_set, tmp_path / "x", dict(steps=1), progress=False)


def test_registry_loads_family_checkpoints_and_specs(tiny_set, tmp_path):
    from ontoscope.models import load_model

    (tmp_path / "s.yaml").write_text("family: tcn\nwidth: 4\ndepth: 2\n")
    a, b = load_model(str(tmp_path / "s.yaml"), seed=3), load_model(str(tmp_path / "s.yaml"), seed=3)
    assert [s.name for s in a.sites()][0] == "encoder.block0"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4))
    trained, _ = train(spec, tiny_set, tmp_path / "ck", dict(steps=2, batch_size=4, warmup=1), progress=False)
    loaded = load_model(str(tmp_path / "ck"))
    assert all(torch.equal(x, y) for x, y in zip(trained.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))
    with pytest.raises(ConfigError, match="unknown model reference"):
        load_model("crepe-large")


@pytest.mark.parametrize("recipe", [dict(), dict(stft_ffts=[256, 2048], mel_weight=0.5, segment=0.2)],
                         ids=["default", "mel-and-long-fft"])
def test_every_loss_term_resumes_to_the_uninterrupted_weights(tiny_set, tmp_path, recipe):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4))
    cfg = dict(steps=8, batch_size=4, warmup=2, eval_every=4, checkpoint_every=4, **recipe)
    full, _ = train(spec, tiny_set, tmp_path / "a", cfg, progress=False)
    train(spec, tiny_set, tmp_path / "b", cfg, progress=False, stop_after=3)
    resumed, card = train(spec, tiny_set, tmp_path / "b", cfg, progress=False)
    assert card["step"] == 8 and card["train"]["stft_ffts"] == recipe.get("stft_ffts", [256, 512, 1024])
    for (k, x), y in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_the_waveform_term_is_weighted_by_wave_weight(tiny_set):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4))
    model, audio = build(spec, seed=0), tiny_set.audio([0, 1])
    with torch.no_grad():
        pred = model(audio)[..., :audio.shape[-1]]
        stft = multi_resolution_stft_loss(pred, audio)
        wave = F.l1_loss(pred, audio)
        losses = {w: float(loss_fn(model, audio, None, cfg=parse_config({"wave_weight": w})))
                  for w in (0.0, 1.0, 4.0)}
    assert losses[0.0] == pytest.approx(float(stft), rel=1e-6)
    assert losses[1.0] == pytest.approx(float(stft + wave), rel=1e-6)
    assert losses[4.0] == pytest.approx(float(stft + 4 * wave), rel=1e-6)
    assert float(wave) > 1e-4  # the term is there to weigh


def test_a_checkpoint_written_before_a_recipe_field_existed_still_resumes(tiny_set, tmp_path):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4))
    cfg = dict(steps=6, batch_size=4, warmup=2, eval_every=3, checkpoint_every=3)
    train(spec, tiny_set, tmp_path / "ck", cfg, progress=False, stop_after=3)
    card = json.loads((tmp_path / "ck" / "card.json").read_text())
    for new in ("stft_ffts", "mel_weight", "wave_weight", "precision"):
        del card["train"][new]
    (tmp_path / "ck" / "card.json").write_text(json.dumps(card))
    _, done = train(spec, tiny_set, tmp_path / "ck", cfg, progress=False)
    assert done["step"] == 6
    with pytest.raises(CheckpointError, match="another spec, config"):
        train(spec, tiny_set, tmp_path / "ck", dict(cfg, mel_weight=1.0), progress=False)


def test_bf16_autocast_changes_the_forward_pass_and_auto_means_fp32_on_cpu(tiny_set, tmp_path):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=4, bottleneck=4))
    cfg = dict(steps=4, batch_size=4, warmup=1, eval_every=2)
    fp32, _ = train(spec, tiny_set, tmp_path / "fp32", dict(cfg, precision="fp32"), progress=False)
    auto, _ = train(spec, tiny_set, tmp_path / "auto", cfg, progress=False)
    bf16, card = train(spec, tiny_set, tmp_path / "bf16", dict(cfg, precision="bf16"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(fp32.state_dict().values(), auto.state_dict().values(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(fp32.state_dict().values(), bf16.state_dict().values(),
                                                       strict=True))
    assert np.isfinite(history_table(card)["loss"].dropna()).all()
    # the weights stay fp32 (autocast casts the operations, not the parameters)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
        assert fp32(tiny_set.audio([0])).dtype == torch.bfloat16
    with torch.no_grad(), autocast(torch.device("cpu"), "auto"):
        assert fp32(tiny_set.audio([0])).dtype == torch.float32


@pytest.mark.parametrize("bad, message", [
    (dict(precision="fp16"), "precision"),
    (dict(stft_ffts=[]), "stft_ffts"),
    (dict(mel_weight=-1), "mel_weight"),
    (dict(wave_weight=-0.5), "wave_weight"),
])
def test_a_bad_recipe_field_is_named_in_one_line(bad, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(bad)
    assert "\n" not in str(err.value)

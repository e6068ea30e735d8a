"""Study configs: every bad config fails before any work, with one line naming the file and the key."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ontoscope.errors import ConfigError
from ontoscope.study.config import expand_models, parse_config

BIN = Path(sys.executable).parent / "ontoscope"

GOOD = {
    "name": "tiny",
    "stimuli": {"factors": ["f0", "loudness"], "n": 32, "seconds": 0.5, "pairs": 2},
    "models": [{"family": "conv_ae", "arch": {"width": 4, "depth": 0},
                "grid": {"strides": [[2, 2], [4, 4]], "bottleneck": [4, 8]},
                "train": {"steps": 5}, "seeds": [0, 1]},
               {"ref": "crepe:tiny"}],
}


def _with(path: str, value, base=GOOD):
    cfg = copy.deepcopy(base)
    keys = path.split(".")
    node = cfg
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


_DELETE = object()

BAD = [
    (["not", "a", "mapping"], "is a mapping"),
    (_with("name", _DELETE), "name: required"),
    (_with("name", "two words"), "name:"),
    (_with("colour", "red"), "colour: unknown key"),
    (_with("models", _DELETE), "models: required"),
    (_with("models", []), "models:"),
    (_with("models.0.family", "rnn"), "models.0"),
    (_with("models.1", {"ref": "crepe:tiny", "family": "conv_ae"}), "not both"),
    (_with("models.1.ref", "wavenet:big"), "unknown model reference 'wavenet:big'"),
    (_with("models.1.ref", "hf:no-such-model"), "models.1.ref: unknown Hugging Face reference 'hf:no-such-model'"),
    (_with("models.1.ref", "crepe:huge"), "models.1.ref: CREPE capacity must be 'tiny' or 'full'"),
    (_with("models.1.ref", "planted:angel=3"), "models.1.ref: bad planted option 'angel=3'"),
    (_with("models.1.ref", "no/such/dir"), "models.1.ref: unknown model reference 'no/such/dir'"),
    (_with("stimuli.n", 5), "stimuli.n"),
    (_with("stimuli.sample_rate", 100), "stimuli.sample_rate"),
    (_with("stimuli.factors", ["f0", "timbre"]), "timbre"),
    (_with("stimuli.ranges", {"f0": [900, 100]}), "f0"),
    (_with("models.0.grid.bottleneck", []), "grid.bottleneck is empty"),
    (_with("models.0.grid.strid", [[2]]), "strid"),
    (_with("models.0.arch.width", -1), "width"),
    (_with("models.0.train.stepz", 5), "stepz"),
    (_with("models.0.train.steps", 0), "steps"),
    (_with("models.0.train.precision", "fp16"), "precision"),
    (_with("analyses", {"operational": {"device": "gpu"}}), "unknown device 'gpu'; use auto, cpu, cuda or cuda:N"),
    (_with("stimuli.source", "soundfont"), "needs bank"),
    (_with("analyses", {"operational": {"n_steer": 1}}), "analyses.operational.n_steer"),
    (_with("analyses", {"operational": {"das_rank": [1, 0]}}), "DAS ranks must be between 1 and 16"),
    (_with("analyses", {"operational": {"das_rank": []}}), "DAS ranks must be between 1 and 16"),
    (_with("report", {"examples": -1}), "report.examples"),
    (_with("analyses", {"fidelity": {"f0_cents": -1}}), "analyses.fidelity.f0_cents"),
    (_with("analyses", {"fidelity": {"f0": 25}}), "analyses.fidelity.f0: unknown key"),
    (_with("analyses", {"fidelity": {"clips": "train"}}), "analyses.fidelity.clips"),
    (_with("models", [GOOD["models"][0], GOOD["models"][0]]), "same model"),
    (_with("models.0.seeds", []), "models.0.seeds"),
]


def test_a_good_config_expands_to_every_grid_point_and_seed():
    cfg = parse_config(GOOD)
    plans = expand_models(cfg)
    assert len(plans) == 2 * 2 * 2 + 1
    ids = [p.id for p in plans]
    assert "conv_ae_strides4x4_bottleneck8_seed1" in ids and "crepe_tiny_seed0" in ids
    knobs = {p.id: p.knobs for p in plans}
    assert knobs["conv_ae_strides4x4_bottleneck8_seed1"]["total_stride"] == 16
    assert knobs["conv_ae_strides2x2_bottleneck4_seed0"]["bottleneck"] == 4


@pytest.mark.parametrize("data,message", BAD, ids=[m for _, m in BAD])
def test_bad_config_is_one_clear_error(data, message):
    with pytest.raises(ConfigError) as e:
        parse_config(data, "study.yaml")
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("study.yaml"), text


@pytest.mark.slow
def test_bad_configs_on_the_command_line_leave_nothing_behind(tmp_path):
    """Through the real command: exit 2, one line on stderr, no run directory."""
    cases = [(yaml.safe_dump(_with("models.0.train.stepz", 5)), "stepz"), ("name: [unclosed", "not valid YAML"),
             (yaml.safe_dump(_with("stimuli.n", 5)), "stimuli.n"),
             (yaml.safe_dump(_with("models.1.ref", "hf:no-such-model")), "hf:no-such-model")]
    for i, (text, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text)
        out = tmp_path / f"run{i}"
        r = subprocess.run([str(BIN), "run", str(path), "--out", str(out)], capture_output=True, text=True,
                           timeout=120)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
        assert not out.exists()
    r = subprocess.run([str(BIN), "run", str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such config file" in r.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "configs")
                                         .glob("*.yaml")))
def test_the_shipped_configs_are_valid(name):
    from ontoscope.study import load_config

    cfg, _ = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    plans = expand_models(cfg)
    assert plans
    if name not in ("demo", "paper", "paper_soundfont"):
        return
    family = [p.knobs for p in plans if p.knobs["family"] == "conv_ae"]
    # downsampling and compression apart: strides compared at one compression, compressions at one stride
    by_compression = {}
    by_stride = {}
    for k in family:
        by_compression.setdefault(k["compression"], set()).add(k["total_stride"])
        by_stride.setdefault(k["total_stride"], set()).add(k["compression"])
    assert any(len(v) > 1 for v in by_compression.values()) and any(len(v) > 1 for v in by_stride.values())
    assert {"elu", "snake"} <= {k["activation"] for k in family}
    refs = {p.ref for p in plans if p.kind == "pretrained"}
    assert {"crepe:tiny", "pesto", "silero-vad", "resemblyzer"} <= refs
    if name != "demo":
        strides = sorted(by_stride)
        assert strides[0] <= 16 and strides[-1] >= 1024
        assert {"crepe:full", "fcpe", "basic-pitch"} <= refs and len({p.seed for p in plans}) >= 3


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_config_in_configs_validates(path):
    from ontoscope.study import load_config

    cfg, _ = load_config(path)
    assert expand_models(cfg)


def test_a_packaged_model_whose_package_is_missing_names_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "silero_vad" else real(name, *a))
    with pytest.raises(ConfigError, match=r"models.1.ref: Silero VAD weights come with the silero_vad package; "
                                          r"install it with `pip install --no-deps silero-vad==6.2.3`"):
        parse_config(_with("models.1.ref", "silero-vad"))

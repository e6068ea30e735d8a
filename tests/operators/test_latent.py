"""The latent ontology table, its predictions on the conv_ae family, saving, and the `analyze` command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec
from ontoscope.operators import STATUSES, LatentOntology, Thresholds, analyze, feature_jacobians, stimulus_batch
from ontoscope.operators.latent import COSINE_MARGIN
from tests.operators.test_geometry import conv_ae_rf

BIN = Path(sys.executable).parent / "ontoscope"
OSC = ["vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth", "beat_rate", "beat_depth"]
RATES = {"vibrato_rate": (3.0, 9.0), "tremolo_rate": (3.0, 12.0), "beat_rate": (15.0, 80.0)}
SWEEP = [[4, 4, 4], [4, 4, 8], [4, 8, 8], [8, 8, 8], [4, 4, 8, 8]]  # total stride 64 ... 1024


def _predicted(rate: str, stride: int, rf: int, periods: float, sr: int = 16000) -> str:
    """Rate-limited iff part of the rate range is above the frame Nyquist and below periods / RF."""
    lo, hi = RATES[rate]
    gap_lo, gap_hi = max(lo, sr / stride / 2), min(hi, periods * sr / rf)
    return "rate-limited" if gap_lo < gap_hi else "affords"


@pytest.fixture(scope="module")
def stride_sweep():
    out = {}
    for aa in ("none", "blur"):
        for strides in SWEEP:
            spec = parse_spec(dict(family="conv_ae", strides=strides, width=2, bottleneck=8, antialias=aa))
            model = build(spec, 0).eval()
            for periods in (1.0, 3.0):
                if aa == "blur" and periods == 1.0:
                    continue
                onto = analyze(model, factors=OSC, seeds=0, sites=["bottleneck"], jacobians=False, empirical=False,
                               thresholds=Thresholds(periods=periods), sweep_points=8, spectra_freqs=4, progress=False)
                out[aa, spec.total_stride, periods] = (spec, onto)
    return out


@pytest.mark.slow
def test_stride_sweep_moves_oscillatory_factors_to_rate_limited_at_the_predicted_stride(stride_sweep):
    seen = {}
    for (aa, stride, periods), (spec, onto) in stride_sweep.items():
        rf = conv_ae_rf(spec)["bottleneck"]
        f = onto.factors.set_index("factor")
        for factor in OSC:
            rate = factor.replace("_depth", "_rate")
            want = _predicted(rate, stride, rf, periods)
            assert f.loc[factor, "status"] == want, (aa, stride, periods, factor, f.loc[factor, "reason"])
            seen[aa, periods, factor, stride] = want
    # with kernel 2 x stride the receptive field is about 4.4 strides: one period always fits where the
    # frame Nyquist ends, so nothing is rate-limited; asking for 3 periods opens the gap
    assert all(v == "affords" for (aa, p, _, _), v in seen.items() if p == 1.0)
    strides = [int(np.prod(s)) for s in SWEEP]
    beat = [seen["none", 3.0, "beat_rate", s] for s in strides]
    vib = [seen["none", 3.0, "vibrato_rate", s] for s in strides]
    # beating (15-80 Hz) goes first, at stride 128; at 1024 the 4548-sample field holds 3 periods of 15 Hz
    assert beat == ["affords", "rate-limited", "rate-limited", "rate-limited", "affords"]
    assert vib == ["affords"] * 4 + ["rate-limited"]  # vibrato (3-9 Hz) at stride 1024 (7.8 Hz Nyquist)
    f = stride_sweep["none", 1024, 3.0][1].factors.set_index("factor")
    assert "neither below the frame Nyquist" in f.loc["vibrato_rate", "reason"]


def test_stride_sweep_raises_aliasing_unless_blurred():
    cum, layer = {}, {}
    for aa in ("none", "blur"):
        for strides in ([2], [2, 2], [4, 4], [4, 4, 4], [4, 8]):
            spec = parse_spec(dict(family="conv_ae", strides=strides, width=2, bottleneck=8, antialias=aa))
            onto = analyze(build(spec, 0).eval(), factors=["f0"], seeds=0, sites=["bottleneck"], jacobians=False,
                           empirical=False, sweep_points=8, spectra_freqs=4, progress=False)
            cum[aa, spec.total_stride] = onto.sites["alias_cumulative"].iloc[0]
            for s, a in onto.aliasing.groupby("stride")["alias_fraction"].mean().items():
                layer.setdefault((aa, s), []).append(a)
    plain = [cum["none", s] for s in (2, 4, 16, 64)]
    assert plain == sorted(plain) and plain[0] > 0.3 and plain[-1] > 0.95
    assert all(cum["blur", s] < 0.3 for s in (2, 4, 16, 64, 32))
    assert all(cum["blur", s] < cum["none", s] for s in (2, 4, 16, 64, 32))
    # per decimating layer: about 1 - 1/s without the low-pass, a few percent with it
    none = {s: np.mean(v) for (aa, s), v in layer.items() if aa == "none"}
    assert none[2] < none[4] < none[8] and none[8] > 0.8
    assert max(np.mean(v) for (aa, _), v in layer.items() if aa == "blur") < 0.15


@pytest.fixture(scope="module")
def small():
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=4))
    model = build(spec, 0).eval()
    with torch.no_grad():  # a stand-in for trained weights: the given weights differ from any initialisation
        model.stages[0][0].weight.mul_(3.0)
    onto = analyze(model, factors=["f0", "loudness", "tremolo_rate", "tremolo_depth"], seeds=5, min_seeds=5,
                   n_stimuli=2, seconds=0.2, max_partials=8, sweep_points=24, spectra_freqs=4, sweep="all",
                   progress=False)
    return spec, model, onto


def test_table_has_a_status_reason_and_numbers_per_site_and_factor(small):
    spec, model, onto = small
    f = onto.factors
    assert len(f) == len(model.sites()) * 4
    assert set(f["status"]) <= set(STATUSES) and f["reason"].str.len().gt(10).all()
    for col in ("frame_rate_hz", "receptive_field_s", "dims_per_frame", "coherence_bound", "alias_cumulative"):
        assert f[col].notna().all(), col
    assert f.groupby("site")["frame_rate_hz"].first()["bottleneck"] == 2000.0
    # every table the docs list is there
    for name in ("sites", "spectra", "aliasing", "alias_sites", "responses", "bandwidths", "injectivity",
                 "modulation", "capacity", "jacobian_factors", "jacobian_pairs", "jacobian_sites"):
        assert len(getattr(onto, name)), name


def test_jacobians_at_five_initialisations_and_the_given_weights(small):
    spec, model, onto = small
    jf = onto.jacobian_factors
    assert sorted(jf[jf["weights"] == "init"]["seed"].unique()) == [0, 1, 2, 3, 4]
    assert (jf["weights"] == "given").any()
    # seed k is the family's own initialisation build(spec, k), run on the same stimuli
    batch = stimulus_batch(["f0", "loudness", "tremolo_rate", "tremolo_depth"], 2, sample_rate=16000, seconds=0.2,
                           seed=0, max_partials=8)
    jac, _, _ = feature_jacobians(build(spec, 3).eval(), batch, ["bottleneck"])
    sens = torch.sqrt((jac["bottleneck"].double().flatten(2).norm(dim=-1) ** 2).mean(1) / jac["bottleneck"].shape[-1])
    got = jf[(jf["weights"] == "init") & (jf["seed"] == 3) & (jf["site"] == "bottleneck")]["sensitivity"]
    np.testing.assert_allclose(got.to_numpy(), sens.numpy(), rtol=1e-5)
    given = jf[(jf["weights"] == "given") & (jf["site"] == "bottleneck")]["sensitivity"].to_numpy()
    init0 = jf[(jf["weights"] == "init") & (jf["seed"] == 0) & (jf["site"] == "bottleneck")]["sensitivity"].to_numpy()
    assert not np.allclose(given, init0)


FOUR = ["f0", "loudness", "tremolo_rate", "tremolo_depth"]


def test_initialisations_run_while_a_decision_is_near_its_threshold():
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=4))
    model = build(spec, 0).eval()  # the given weights are initialisation 0: its Jacobians are reused
    kw = dict(factors=FOUR, seeds=4, n_stimuli=2, seconds=0.2, max_partials=8, sweep_points=8, spectra_freqs=4,
              empirical=False, progress=False)
    far = analyze(model, thresholds=Thresholds(cosine_threshold=2.0, invariance_threshold=1e-12), **kw)
    jf = far.jacobian_factors
    assert far.meta["seeds_run"] == 1 and sorted(jf["weights"].unique()) == ["given", "init"]
    init0 = jf[jf["weights"] == "init"]
    assert init0["method"].str.contains("given weights").all()
    np.testing.assert_array_equal(init0["sensitivity"].to_numpy(), jf[jf["weights"] == "given"]["sensitivity"])
    # a threshold placed on the first initialisation's |cos| at the first site: more initialisations run,
    # through the last site with a |cos| that near it (the sites after it are already decided)
    first = float(init0[init0["site"] == "encoder.block0"]["max_abs_cos"].min())
    near = analyze(model, thresholds=Thresholds(cosine_threshold=first, invariance_threshold=1e-12), **kw)
    jn = near.jacobian_factors
    assert near.meta["seeds_run"] == 4
    later = jn[(jn["weights"] == "init") & (jn["seed"] > 0)]
    sites = [s.name for s in model.sites()]
    close = init0[(init0["max_abs_cos"] - first).abs() < COSINE_MARGIN]["site"]
    upto = max(sites.index(s) for s in close)
    assert upto < len(sites) - 1 and set(later[later["seed"] == 1]["site"]) == set(sites[: upto + 1])
    # the first round is the same either way, and a later one is the family's own initialisation
    batch = stimulus_batch(FOUR, 2, sample_rate=16000, seconds=0.2, seed=0, max_partials=8)
    jac, _, _ = feature_jacobians(build(spec, 2).eval(), batch, ["encoder.block0"])
    sens = torch.sqrt((jac["encoder.block0"].double().flatten(2).norm(dim=-1) ** 2).mean(1)
                      / jac["encoder.block0"].shape[-1])
    two = later[(later["seed"] == 2) & (later["site"] == "encoder.block0")]
    np.testing.assert_allclose(two["sensitivity"].to_numpy(), sens.numpy(), rtol=1e-5)


def test_the_needed_sweep_decides_as_the_full_one():
    # the stride-2 site is below the alias threshold: it needs the sweep; the stride-8 ones and after do not
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4, 4], width=4, bottleneck=4))
    model = build(spec, 0).eval()
    kw = dict(factors=["f0", "brightness", "loudness"], seeds=1, n_stimuli=2, seconds=0.2, max_partials=8,
              sweep_points=24, spectra_freqs=4, empirical=False, progress=False)
    full = analyze(model, sweep="all", **kw)
    lazy = analyze(model, sweep="needed", **kw)
    sites = [s.name for s in model.sites()]
    swept = lazy.meta["swept_sites"]
    assert 0 < len(swept) < len(sites) and swept == sites[: len(swept)]
    assert set(lazy.responses["site"]) == set(swept)
    pd.testing.assert_series_equal(lazy.factors["status"], full.factors["status"])
    # every site left out is decided without it: its cumulative alias fraction is above the threshold
    rest = lazy.sites[~lazy.sites["site"].isin(swept)]
    assert (rest["alias_cumulative"] > Thresholds().alias_threshold).all() and rest["collapse_fraction"].isna().all()
    # where both ran, the numbers agree (a site's sketch does not depend on the other sites swept)
    both = full.sites.set_index("site").loc[swept, "collapse_fraction"]
    np.testing.assert_allclose(lazy.sites.set_index("site").loc[swept, "collapse_fraction"], both)
    with pytest.raises(ConfigError, match="unknown sweep"):
        analyze(model, sweep="some", **kw)


def test_save_load_figures_and_json(small, tmp_path):
    pytest.importorskip("matplotlib")
    _, model, onto = small
    onto.save(tmp_path / "lo", figures=True)
    for name in ("ladder", "aliasing", "spectra", "responses", "jacobian_cosines", "status"):
        png = tmp_path / "lo" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG", name
    back = LatentOntology.load(tmp_path / "lo")
    pd.testing.assert_frame_equal(back.factors, onto.factors, check_dtype=False)
    assert set(back.tables) == set(onto.tables)
    d = onto.to_dict()
    assert d["model"] == onto.model and d["sample_rate"] == 16000
    assert [s["name"] for s in d["sites"]] == [s.name for s in model.sites()]
    for s in d["sites"]:
        assert {"name", "stride", "frame_rate_hz", "receptive_field_samples", "channels", "global_context"} <= set(s)
    json.dumps(d, allow_nan=False)


def run(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_analyze_command_json(tmp_path):
    spec = tmp_path / "ae.yaml"
    spec.write_text("family: conv_ae\nsample_rate: 16000\nstrides: [2, 4]\nwidth: 2\nbottleneck: 4\n")
    r = run("analyze", spec, "--out", tmp_path / "out", "--format", "json", "--seeds", 0, "--no-jacobians",
            "--sweep-points", 8, "--no-figures", "--factors", "f0,vibrato_rate,vibrato_depth")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == str(spec) and d["sample_rate"] == 16000
    sites = {s["name"]: s for s in d["sites"]}
    assert sites["bottleneck"]["stride"] == 8 and sites["bottleneck"]["frame_rate_hz"] == 2000
    assert sites["bottleneck"]["receptive_field_samples"] == 46 and sites["bottleneck"]["channels"] == 4
    assert sites["bottleneck"]["global_context"] is False
    assert {(f["site"], f["factor"]) for f in d["factors"]} >= {("bottleneck", "vibrato_rate")}
    assert all(f["status"] in STATUSES and f["reason"] for f in d["factors"])
    assert pd.read_parquet(tmp_path / "out" / "factors.parquet").shape[0] == len(d["factors"])
    assert (tmp_path / "out" / "latent.json").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["nosuchmodel:x"], "unknown model reference"),
    (["SPEC", "--format", "xml"], "unknown --format"),
])
def test_analyze_bad_input_subprocess(tmp_path, args, message):
    spec = tmp_path / "ae.yaml"
    spec.write_text("family: conv_ae\nstrides: [2]\nwidth: 2\nbottleneck: 2\n")
    args = [str(spec) if a == "SPEC" else a for a in args]
    r = run("analyze", *args, "--out", tmp_path / "out")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out" / "latent.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--sites", "encoder.block9"], "unknown site 'encoder.block9'"),
    (["--factors", "f0,pitchiness"], "unknown factor 'pitchiness'"),
    (["--seeds", "-1"], "--seeds must be"),
    (["--sweep", "half"], "unknown --sweep 'half'"),
])
def test_analyze_bad_input_in_process(tmp_path, monkeypatch, capsys, extra, message):
    from ontoscope import cli

    spec = tmp_path / "ae.yaml"
    spec.write_text("family: conv_ae\nstrides: [2]\nwidth: 2\nbottleneck: 2\n")
    monkeypatch.setattr(sys, "argv", ["ontoscope", "analyze", str(spec), "--out", str(tmp_path / "out"), *extra])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_quick_analysis_says_what_it_left_out(tmp_path):
    from rich.console import Console

    from ontoscope.operators.cli import analyze_command

    spec = tmp_path / "ae.yaml"
    spec.write_text("family: conv_ae\nsample_rate: 16000\nstrides: [2, 4]\nwidth: 2\nbottleneck: 4\n")
    console = Console(record=True, width=200)
    onto = analyze_command(str(spec), tmp_path / "out", seeds=5, factors=["f0", "loudness"],
                           figures=False, quick=True, console=console)
    text = console.export_text()
    assert "quick look: 1 initialisation, 2 Jacobian stimuli, 48 sweep frequencies" in text
    m = onto.meta
    assert m["quick"] and m["seeds"] == 1 and m["sweep_points"] == 48 and not m["empirical"]
    assert onto.sites["empirical_rf_samples"].isna().all()
    assert LatentOntology.load(tmp_path / "out").meta["quick"]


def test_progress_names_every_analysis_and_site(capsys):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4], width=2, bottleneck=4))
    analyze(build(spec, 0).eval(), factors=["f0", "loudness"], seeds=1, n_stimuli=1, seconds=0.1, max_partials=4,
            sweep_points=8, spectra_freqs=4, sweep="all", progress=True)
    err = capsys.readouterr().err
    for part in ("receptive fields", "conv spectra", "feature Jacobians", "sine sweep, 5 of 5 sites"):
        assert part in err, err


@pytest.mark.slow
@pytest.mark.parametrize("strides, antialias", [([2, 4], "none"), ([4, 4, 4], "none"), ([2, 2, 4], "blur")])
def test_defaults_decide_as_every_initialisation_and_every_site_swept(strides, antialias):
    # the rounds stop and the sweep ends where no decision depends on more: the statuses are those of the
    # full computation (every initialisation, every site swept) on the same stimuli
    spec = parse_spec(dict(family="conv_ae", strides=strides, width=4, bottleneck=4, antialias=antialias))
    model = build(spec, 0).eval()
    kw = dict(seeds=5, seconds=0.2, max_partials=8, sweep_points=32, spectra_freqs=4, empirical=False,
              progress=False)
    cheap = analyze(model, **kw)
    full = analyze(model, min_seeds=5, sweep="all", **kw)
    assert full.meta["seeds_run"] == 5 and cheap.meta["seeds_run"] <= 5
    pd.testing.assert_series_equal(cheap.factors["status"], full.factors["status"])

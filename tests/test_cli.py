"""The command line: real subprocesses, as a user runs them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

BIN = Path(sys.executable).parent / "ontoscope"


def run(*args, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("stimuli", "measure", "demo"):
        assert cmd in r.stdout


def test_stimuli_command_writes_a_set_and_wavs(tmp_path):
    r = run("stimuli", tmp_path / "set", "--n", 6, "--sr", 8000, "--seconds", 0.5, "--seed", 3,
            "--factors", "f0,loudness,vibrato_rate,vibrato_depth", "--export", tmp_path / "wav")
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(tmp_path / "set" / "factors.parquet")
    assert len(table) == 6 and table["clip"].tolist() == list(range(6))
    assert table["brightness"].eq(-6.0).all()  # not varied: held at the canon default
    data, sr = sf.read(tmp_path / "wav" / "clip-00005.wav")
    assert sr == 8000 and data.shape == (4000,)
    level = 20 * np.log10(np.sqrt(np.mean(data**2)))
    assert level == pytest.approx(table.loc[5, "loudness"], abs=1e-3)


def test_stimuli_pairs(tmp_path):
    r = run("stimuli", tmp_path / "pairs", "--n", 2, "--sr", 8000, "--seconds", 0.3, "--factors", "f0,loudness",
            "--pairs")
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(tmp_path / "pairs" / "factors.parquet")
    assert len(table) == 8 and set(table["factor"]) == {"f0", "loudness"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--factors", "f0,pitchiness"], "unknown factor 'pitchiness'"),
        (["--sr", "1000"], "above Nyquist"),
        (["--seconds", "0.1"], "too short"),
        (["--n", "0"], "positive integer"),
        (["--method", "sobol"], "unknown --method"),
        (["--factors", "vibrato_rate"], "vibrato_depth is fixed at 0"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, args, message):
    r = run("stimuli", tmp_path / "out", *args)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow
def test_train_command_trains_and_resumes(tmp_path):
    r = run("stimuli", tmp_path / "set", "--n", 12, "--sr", 8000, "--seconds", 0.3, "--factors", "f0,loudness")
    assert r.returncode == 0, r.stderr
    (tmp_path / "spec.yaml").write_text(
        "family: conv_ae\nsample_rate: 8000\nstrides: [2, 2]\nwidth: 4\nbottleneck: 4\n")
    r = run("train", tmp_path / "spec.yaml", "--data", tmp_path / "set", "--out", tmp_path / "ck", "--steps", 3)
    assert r.returncode == 0, r.stderr
    assert "trained conv_ae for 3 steps" in r.stdout
    assert (tmp_path / "ck" / "model.safetensors").is_file()
    (tmp_path / "bad.yaml").write_text("family: conv_ae\nstrides: [2, 0]\n")
    r = run("train", tmp_path / "bad.yaml", "--data", tmp_path / "set", "--out", tmp_path / "ck2")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "strides" in r.stderr
    r = run("train", tmp_path / "spec.yaml", "--data", tmp_path / "nowhere", "--out", tmp_path / "ck3")
    assert r.returncode == 2 and "no such stimulus set" in r.stderr


def test_measure_a_folder_measures_the_good_files_and_lists_the_bad(tmp_path):
    t = np.arange(8000) / 8000
    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "a.wav", 0.1 * np.sin(2 * np.pi * 220 * t), 8000)
    sf.write(folder / "b.flac", 0.1 * np.sin(2 * np.pi * 330 * t), 8000)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    r = run("measure", folder, "--out", tmp_path / "m.csv")
    assert r.returncode == 0, r.stderr
    assert "2 clips measured" in r.stdout and "skipped broken.wav" in r.stderr
    table = pd.read_csv(tmp_path / "m.csv").set_index("file")
    assert table.loc["a.wav", "f0"] == pytest.approx(220, rel=1e-3)
    assert table.loc["b.flac", "f0"] == pytest.approx(330, rel=1e-3)
    assert np.isnan(table.loc["broken.wav", "f0"]) and isinstance(table.loc["broken.wav", "error"], str)


def test_measure_a_stimulus_set_joins_on_clip(tmp_path):
    r = run("stimuli", tmp_path / "set", "--n", 4, "--sr", 8000, "--seconds", 0.5, "--factors", "f0,loudness")
    assert r.returncode == 0, r.stderr
    r = run("measure", tmp_path / "set", "--out", tmp_path / "m.parquet")
    assert r.returncode == 0, r.stderr
    truth = pd.read_parquet(tmp_path / "set" / "factors.parquet")
    joined = truth.merge(pd.read_parquet(tmp_path / "m.parquet"), on="clip", suffixes=("", "_measured"))
    assert len(joined) == 4
    np.testing.assert_allclose(joined["f0_measured"], joined["f0"], rtol=3e-3)


@pytest.mark.parametrize(
    ("make", "out", "message"),
    [
        (lambda p: None, "m.csv", "no such file or directory"),
        (lambda p: p.mkdir(), "m.csv", "no audio files"),
        (lambda p: (p.mkdir(), (p / "x.wav").write_bytes(b"junk")), "m.csv", "none of the 1 audio files"),
        (lambda p: p.mkdir(), "m.xlsx", "use a .parquet or .csv"),
    ],
)
def test_measure_bad_input_is_one_line(tmp_path, make, out, message):
    make(tmp_path / "in")
    r = run("measure", tmp_path / "in", "--out", tmp_path / out)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / out).exists()


@pytest.mark.slow
def test_probe_command_on_a_planted_model(tmp_path):
    r = run("stimuli", tmp_path / "set", "--n", 40, "--sr", 16000, "--seconds", 0.3, "--seed", 2,
            "--factors", "f0,loudness,noise", "--overwrite")
    assert r.returncode == 0, r.stderr
    r = run("probe", "planted:factors=f0+loudness+noise,omit=noise", "--data", tmp_path / "set", "--out",
            tmp_path / "p", "--views", "pooled,frames", "--probes", "ridge")
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(tmp_path / "p" / "probes.parquet")
    assert set(table["view"]) == {"pooled", "frames"} and set(table["probe"]) == {"ridge"}
    pooled = table[(table["view"] == "pooled") & (table["site"] == "bottleneck")].set_index("factor")
    assert pooled.loc["f0", "test_r2"] > 0.95 and pooled.loc["noise", "test_r2"] < 0.5
    metrics = pd.read_parquet(tmp_path / "p" / "metrics.parquet")
    assert list(metrics["site"]) == ["encoder.factors", "bottleneck"] and "mig" in metrics
    assert (tmp_path / "p" / "figures" / "r2_by_site.png").is_file()
    for args, message in [(["--views", "spectrum"], "unknown view"), (["--sites", "latent"], "unknown site"),
                          (["--probes", "svm"], "unknown probe")]:
        r = run("probe", "planted", "--data", tmp_path / "set", "--out", tmp_path / "q", *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
        assert not (tmp_path / "q" / "probes.parquet").exists()
    assert not (tmp_path / "q" / "capture").exists()  # bad options fail before any work


@pytest.mark.slow
def test_probe_interventions_write_the_icv_table_and_audio(tmp_path):
    common = ["--sr", 16000, "--seconds", 0.5, "--factors", "f0,loudness,noise", "--overwrite"]
    assert run("stimuli", tmp_path / "set", "--n", 48, "--seed", 2, *common).returncode == 0
    assert run("stimuli", tmp_path / "pairs", "--n", 6, "--seed", 3, "--pairs", *common).returncode == 0
    r = run("probe", "planted:factors=f0+loudness+noise,omit=noise", "--data", tmp_path / "set", "--out",
            tmp_path / "p", "--sites", "bottleneck", "--views", "pooled,frames", "--probes", "ridge",
            "--interventions", "--pairs", tmp_path / "pairs", "--families", "additive,interchange,das", "--sae")
    assert r.returncode == 0, r.stderr
    assert "operational ontology" in r.stdout
    op = pd.read_parquet(tmp_path / "p" / "operational.parquet").set_index(["factor", "family"])
    assert set(op.index.get_level_values("family")) == {"additive", "interchange", "das"}
    assert op.loc[("f0", "additive"), "status"] == "icv" and op.loc[("noise", "additive"), "status"] == "absent"
    assert op.loc[("f0", "interchange"), "iia"] > 0.9
    # decodability is the capture's: the same number `ontoscope probe` printed for the pooled view
    probes = pd.read_parquet(tmp_path / "p" / "probes.parquet")
    pooled = probes[(probes["view"] == "pooled") & (probes["probe"] == "ridge")].set_index("factor")["test_r2"]
    assert op.loc[("f0", "additive"), "decodability"] == pytest.approx(pooled["f0"])
    assert (tmp_path / "p" / "examples" / "bottleneck" / "f0_steered.wav").is_file()
    assert (tmp_path / "p" / "figures" / "icv_by_site.png").is_file()
    assert (tmp_path / "p" / "figures" / "dose_response.png").is_file()
    sae = pd.read_parquet(tmp_path / "p" / "sae.parquet")
    assert set(sae["factor"]) == {"f0", "loudness", "noise"} and (sae["site"] == "bottleneck").all()
    for args, message in [(["--families", "gain"], "add --interventions"),
                          (["--interventions", "--families", "steer"], "unknown intervention family 'steer'"),
                          (["--interventions", "--views", "frames"], "pooled view"),
                          (["--sae", "--views", "pooled"], "frames view")]:
        r = run("probe", "planted", "--data", tmp_path / "set", "--out", tmp_path / "q", *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "q").exists()

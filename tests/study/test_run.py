"""Running a study: cached stages, kill -9 and resume, identical tables, status, unwritable output."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ontoscope.artifacts import OutputError
from ontoscope.study import run_study, study_status

BIN = Path(sys.executable).parent / "ontoscope"

CONFIG = """\
name: tiny
stimuli: {factors: [f0, loudness], n: 32, seconds: 0.5, pairs: 2, seed: 1}
models:
  - family: conv_ae
    arch: {width: 4, depth: 0}
    grid: {strides: [[2, 2], [4, 4]]}
    train: {steps: 40, batch_size: 8, warmup: 2, eval_every: 10, checkpoint_every: 5}
analyses:
  latent: {seeds: 1, sweep_points: 16, jacobians: false}
  operational: {n_steer: 3, max_sites: 2, erasure: false, families: [additive, gain, interchange]}
  controls: false
report: {examples: 1}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def clean(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    run_study(config, out)
    return out


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p) for p in sorted((run / "tables").glob("*.parquet"))}


def _kill_when(config: Path, out: Path, pattern: str, timeout: float = 240) -> None:
    """Start the study, kill -9 it as soon as a path matching ``pattern`` appears under ``out``."""
    proc = subprocess.Popen([str(BIN), "run", str(config), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if list(out.glob(pattern)):
                break
            if proc.poll() is not None:
                pytest.fail(f"the study ended before {pattern} appeared")
            time.sleep(0.05)
        else:
            pytest.fail(f"{pattern} never appeared")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_killed_study_resumes_to_the_same_tables(config, clean, tmp_path):
    out = tmp_path / "run"
    _kill_when(config, out, "stages/train/*.partial/*")  # during training
    assert not (out / "tables").exists()
    _kill_when(config, out, "stages/operational/*.partial")  # during probing
    done = study_status_done(out)
    assert done["train"] >= 1
    r = subprocess.run([str(BIN), "run", str(config), "--out", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "done  stimuli" in r.stdout and "report ->" in r.stdout
    a, b = _tables(clean), _tables(out)
    assert a.keys() == b.keys() and {"latent.parquet", "operational.parquet", "comparison.parquet"} <= set(a)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    assert (out / "report.html").is_file()


def study_status_done(run: Path) -> dict[str, int]:
    t = study_status(run)
    return t[t["done"]].groupby("stage").size().to_dict()


@pytest.mark.slow
def test_a_finished_study_is_all_cached(config, clean):
    t0 = time.perf_counter()
    lines = []
    run_study(config, clean, console=lines.append)
    assert all(line.startswith("done") for line in lines), lines
    assert time.perf_counter() - t0 < 20
    status = study_status(clean)
    assert status["done"].all() and set(status["stage"]) >= {"stimuli", "pairs", "train", "latent", "operational",
                                                             "comparison", "report"}
    r = subprocess.run([str(BIN), "status", str(clean)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "stages done" in r.stdout


def test_every_trained_model_has_its_reconstruction_fidelity(clean):
    tables = _tables(clean)
    fid, models = tables["fidelity.parquet"], tables["models.parquet"]
    assert set(fid["model"]) == set(models.loc[models["trained"], "model"])
    f0 = fid[fid["factor"] == "f0"]
    assert len(f0) == len(models) and (f0["n"] > 0).all() and (f0["median"] > 0).all()
    # the gate is scored on every clip of the study (analyses.fidelity.clips: all); the held-out score is kept
    assert (fid["clips"] == "all").all()
    for train_dir in (clean / "stages" / "train").iterdir():
        stage = json.loads((train_dir / "stage.json").read_text())
        assert stage["fidelity_all"]["f0 (cents)"] in set(f0["median"].round(4))
        held = pd.read_parquet(train_dir / "fidelity.parquet").set_index("factor")
        every = pd.read_parquet(train_dir / "fidelity_all.parquet").set_index("factor")
        assert 0 < held.loc["f0", "n"] < every.loc["f0", "n"]
        assert stage["fidelity"]["f0 (cents)"] == round(float(held.loc["f0", "median"]), 4)
    # the gate (defaults: f0 25 cents, loudness 1.5 dB) marks each trained model from those medians
    loud = fid[fid["factor"] == "loudness"].set_index("model")["median"]
    gate = models.set_index("model")
    for model, cents in f0.set_index("model")["median"].items():
        expect = "passed" if cents <= 25 and loud[model] <= 1.5 else "undertrained"
        assert gate.loc[model, "fidelity"] == expect and (expect == "passed") == (gate.loc[model, "fidelity_reason"]
                                                                                  == "")
    claims = tables["claims.parquet"]
    n = int((gate["fidelity"] == "undertrained").sum())
    assert n == 0 or f"{n} undertrained" in claims["numbers"].iloc[0] or "failed the fidelity gate" in \
        claims["reason"].iloc[0]


def test_force_recomputes_a_stage(config, clean):
    lines = []
    run_study(config, clean, force=["latent"], console=lines.append)
    assert sum(line.startswith("run   latent") for line in lines) == 2
    assert all(line.startswith("done") for line in lines if "train" in line)


def test_unwritable_output_is_reported(config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write the run directory"):
        run_study(config, blocker / "run")
    r = subprocess.run([str(BIN), "run", str(config), "--out", str(blocker / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot write" in r.stderr


@pytest.mark.slow
def test_ray_gives_the_local_tables_even_when_a_worker_is_killed(config, clean, tmp_path):
    """The same stages as Ray tasks on a local cluster (2 CPUs), one worker killed with -9 mid-training."""
    ray = pytest.importorskip("ray")
    cfg = config
    killed = []

    def killer():  # kill -9 the first worker seen training, once
        t0 = time.time()
        while time.time() - t0 < 240 and not killed:
            if list((tmp_path / "ray").glob("stages/train/*.partial/*")):
                r = subprocess.run(["pkill", "-9", "-f", "ray::_chain"], capture_output=True)
                if r.returncode == 0:
                    killed.append(time.time())
                    return
            time.sleep(0.05)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        lines = []
        run_study(cfg, tmp_path / "ray", executor="ray", retries=3, console=lines.append)
        thread.join(timeout=1)
    finally:
        ray.shutdown()
    assert killed, "no worker was killed: the test did not exercise a retry"
    assert sum(line.startswith("queue") for line in lines) == 2
    a, b = _tables(clean), _tables(tmp_path / "ray")
    assert a.keys() == b.keys() and "operational.parquet" in a
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


@pytest.mark.slow
def test_a_run_directory_on_an_fsspec_url_resumes_from_another_working_copy(config, clean, tmp_path,
                                                                             monkeypatch):
    """A run kept at a URL (here file://, as a shared mount): every finished stage is uploaded, its stage.json
    last; a second machine (a fresh working copy) finds every stage done and writes the same tables."""
    url = f"file://{tmp_path}/shared/run"
    monkeypatch.setenv("ONTOSCOPE_CACHE", str(tmp_path / "machine1"))
    run_study(config, url)
    remote = tmp_path / "shared" / "run"
    assert (remote / "report.html").is_file() and (remote / "tables" / "operational.parquet").is_file()
    assert len(list(remote.glob("stages/*/*/stage.json"))) == len(list(clean.glob("stages/*/*/stage.json")))
    monkeypatch.setenv("ONTOSCOPE_CACHE", str(tmp_path / "machine2"))
    lines = []
    run_study(config, url, console=lines.append)
    assert all(line.startswith("done") for line in lines), lines
    a, b = _tables(clean), {p.name: pd.read_parquet(p) for p in sorted((remote / "tables").glob("*.parquet"))}
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


CONTROLLED = """\
name: controlled
stimuli: {factors: [f0, loudness, vibrato_depth], n: 32, seconds: 1.0,
          pairs: 6, seed: 2}
models:
  - family: conv_ae
    arch: {width: 4, depth: 0}
    grid: {strides: [[4, 4]]}
    train: {steps: 10, batch_size: 4, warmup: 2, eval_every: 5, checkpoint_every: 5}
analyses:
  latent: {seeds: 1, sweep_points: 16, jacobians: false}
  operational: {n_steer: 3, max_sites: 1, erasure: false, families: [gain], das_steps: 8}
  controls: {seeds: [0], n_steer: 4}
report: {examples: 0}
"""


@pytest.mark.slow
def test_the_controls_run_first_and_their_rates_open_the_report(tmp_path):
    """Every family's positive cells are found and no negative cell is called an ICV on the control models;
    the rates reach the tables, the claims and the report's first section."""
    cfg = tmp_path / "controlled.yaml"
    cfg.write_text(CONTROLLED)
    lines = []
    report = run_study(cfg, tmp_path / "run", console=lines.append)
    assert [ln.split()[1] for ln in lines[:3]] == ["stimuli", "pairs", "controls"]
    rates = pd.read_parquet(tmp_path / "run" / "tables" / "control_rates.parquet").set_index("family")
    assert {"additive", "gain", "time_warp", "place_shift", "modulation", "interchange", "das"} <= set(rates.index)
    # (a family with no negative cell it could measure has no false-positive rate)
    assert (rates["sensitivity"] == 1.0).all() and (rates["fpr"].fillna(0) == 0).all() and rates["passed"].all(), rates
    rows = pd.read_parquet(tmp_path / "run" / "tables" / "controls.parquet")
    assert set(rows["control"]) == {"controller", "supervised", "waveform", "waveform_level", "place", "place_shuffled"}
    claims = pd.read_parquet(tmp_path / "run" / "tables" / "claims.parquet")
    assert "instrument failed its controls" not in set(claims["verdict"])
    html = report.read_text()
    assert html.index('id="controls"') < html.index('id="claims"') and "controls passed" in html


@pytest.mark.slow
def test_a_model_at_another_rate_hears_the_stimuli_rendered_at_its_rate(tmp_path):
    """A planted model at 22 050 Hz in a 16 kHz study: its operational stage renders the same factor draws at
    22 050 Hz (partials up to its Nyquist) and finds the planted factors, brightness included, as ICVs."""
    from ontoscope.stimuli.dataset import StimulusSet
    from ontoscope.study.config import expand_models, parse_config
    from ontoscope.study.stages import operational_stage, pairs_stage, stimuli_stage

    cfg = parse_config({"name": "rates", "stimuli": {"factors": ["f0", "loudness", "brightness"], "n": 48,
                                                     "seconds": 0.5, "pairs": 6, "seed": 0},
                        "models": [{"ref": "planted:sr=22050"}],
                        "analyses": {"operational": {"n_steer": 4, "erasure": False,
                                                     "families": ["additive", "interchange"]}}})
    (plan,) = expand_models(cfg)
    stimuli_stage(cfg, tmp_path / "stimuli")
    pairs_stage(cfg, tmp_path / "pairs")
    operational_stage(cfg, plan, None, tmp_path / "stimuli", tmp_path / "pairs", tmp_path / "op")
    own, study = StimulusSet.load(tmp_path / "op" / "stimuli"), StimulusSet.load(tmp_path / "stimuli" / "set")
    assert own.sr == 22050 and study.sr == 16000 and own.factors.equals(study.factors)
    assert StimulusSet.load(tmp_path / "op" / "pairs").sr == 22050
    table = pd.read_parquet(tmp_path / "op" / "operational.parquet")
    best = table[table["family"] == "additive"].set_index("factor")["status"]
    assert (best == "icv").all(), table

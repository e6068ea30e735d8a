import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ontoscope.errors import AudioError, FactorError, StimulusSetError
from ontoscope.stimuli.audio_io import find_audio, read_audio, write_audio
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.factors import CANON, FactorSpace
from ontoscope.stimuli.pairs import counterfactual_pairs
from ontoscope.stimuli.synth import render


def test_render_load_and_lazy_audio(tmp_path):
    space = FactorSpace.create()
    ds = StimulusSet.synthesize(tmp_path / "set", space, 10, 8000, 0.3, seed=1, shard_size=4, progress=False)
    assert len(ds) == 10 and ds.sr == 8000 and ds.n_samples == 2400
    again = StimulusSet.load(tmp_path / "set")
    expected = render(space.sample(10, seed=1), 8000, 0.3)
    assert torch.equal(again.audio(), expected)
    assert torch.equal(again.audio([9, 0, 5]), expected[[9, 0, 5]])
    audio, row = again[7]
    assert torch.equal(audio, expected[7]) and row["clip"] == 7
    chunks = list(again.chunks(3))
    assert [len(i) for i, _ in chunks] == [3, 3, 3, 1]
    assert torch.equal(torch.cat([a for _, a in chunks]), expected)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["meta"]["seed"] == 1 and manifest["n_clips"] == 10


def test_interrupted_render_resumes(tmp_path):
    space = FactorSpace.create(["f0", "loudness"])
    root = tmp_path / "set"
    full = StimulusSet.synthesize(root, space, 9, 8000, 0.2, seed=2, shard_size=3, progress=False).audio()
    # simulate a kill after the first shard: no manifest, later shards missing
    (root / "manifest.json").unlink()
    (root / "audio" / "shard-00002.npy").unlink()
    first = root / "audio" / "shard-00000.npy"
    stamp = first.stat().st_mtime_ns
    with pytest.raises(StimulusSetError, match="not a complete stimulus set"):
        StimulusSet.load(root)
    resumed = StimulusSet.synthesize(root, space, 9, 8000, 0.2, seed=2, shard_size=3, progress=False)
    assert first.stat().st_mtime_ns == stamp  # finished shards are not redone
    assert torch.equal(resumed.audio(), full)


def test_build_with_any_renderer_adds_its_columns_and_resumes(tmp_path):
    table = pd.DataFrame({"clip": np.arange(5), "seed": np.arange(5) + 10, "level": np.linspace(0.1, 0.5, 5)})
    calls = []

    def shard(rows):
        calls.append(rows["clip"].tolist())
        if len(calls) == 2 and not (tmp_path / "done").exists():
            raise KeyboardInterrupt  # killed while rendering the second shard
        audio = np.outer(rows["level"], np.ones(80)).astype(np.float32)
        return audio, pd.DataFrame({"measured_level": audio.max(1) * 2})

    root = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        StimulusSet.build(root, table, 8000, 0.01, shard, plan={"source": "test"}, columns=True, shard_size=2,
                          progress=False, meta={"source": "test"})
    assert not (root / "manifest.json").exists() and (root / "columns" / "shard-00000.parquet").is_file()
    (tmp_path / "done").touch()
    ds = StimulusSet.build(root, table, 8000, 0.01, shard, plan={"source": "test"}, columns=True, shard_size=2,
                           progress=False, meta={"source": "test"}, finish=lambda t: {"n": len(t)})
    assert calls == [[0, 1], [2, 3], [2, 3], [4]]  # the finished shard is not redone
    np.testing.assert_allclose(ds.factors["measured_level"], 2 * table["level"], rtol=1e-6)
    assert ds.manifest["meta"] == {"source": "test", "n": 5} and ds.manifest["source"] == "test"
    assert torch.equal(ds.audio([4])[0], torch.full((80,), 0.5))
    with pytest.raises(StimulusSetError, match="different stimulus set"):
        StimulusSet.build(root, table, 8000, 0.01, shard, plan={"source": "other"}, columns=True, shard_size=2)


def test_refuses_to_overwrite_a_different_set(tmp_path):
    space = FactorSpace.create(["f0"])
    StimulusSet.synthesize(tmp_path / "s", space, 4, 8000, 0.1, seed=0, progress=False)
    same = StimulusSet.synthesize(tmp_path / "s", space, 4, 8000, 0.1, seed=0, progress=False)
    assert len(same) == 4
    with pytest.raises(StimulusSetError, match="different stimulus set"):
        StimulusSet.synthesize(tmp_path / "s", space, 4, 8000, 0.1, seed=1, progress=False)
    other = StimulusSet.synthesize(tmp_path / "s", space, 5, 8000, 0.1, seed=1, overwrite=True, progress=False)
    assert len(other) == 5
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(StimulusSetError, match="not empty"):
        StimulusSet.synthesize(tmp_path / "junk", space, 4, 8000, 0.1, progress=False)


def test_corrupt_shard_is_reported(tmp_path):
    ds = StimulusSet.synthesize(tmp_path / "s", FactorSpace.create(["f0"]), 4, 8000, 0.1, progress=False)
    (tmp_path / "s" / "audio" / "shard-00000.npy").write_bytes(b"garbage")
    with pytest.raises(StimulusSetError, match="cannot read audio shard"):
        StimulusSet.load(ds.root).audio()


def test_export_wav_and_csv(tmp_path):
    ds = StimulusSet.synthesize(tmp_path / "s", FactorSpace.create(), 3, 16000, 0.3, seed=3, progress=False)
    out = ds.export(tmp_path / "wav", progress=False)
    table = pd.read_csv(out / "factors.csv")
    assert list(table["file"]) == ["clip-00000.wav", "clip-00001.wav", "clip-00002.wav"]
    data, sr = sf.read(out / "clip-00002.wav", dtype="float32")
    assert sr == 16000
    np.testing.assert_array_equal(data, ds.audio([2])[0].numpy())
    np.testing.assert_allclose(table["f0"], ds.factors["f0"])


def test_counterfactual_pairs_differ_in_one_factor_only(tmp_path):
    space = FactorSpace.create()
    table = counterfactual_pairs(space, 5, factors=["f0", "vibrato_depth", "tremolo_rate"], seed=1)
    assert len(table) == 30
    for _, pair in table.groupby("pair"):
        base, source = pair[pair.role == "base"].iloc[0], pair[pair.role == "source"].iloc[0]
        assert base["seed"] == source["seed"]
        changed = [n for n in CANON if not (base[n] == source[n] or (pd.isna(base[n]) and pd.isna(source[n])))]
        assert changed == [base["factor"]]
        f = space[base["factor"]]
        assert abs(f.normalize(source[base["factor"]]) - f.normalize(base[base["factor"]])) >= 0.1 - 1e-9
    ds = StimulusSet.render(tmp_path / "pairs", table, 16000, 0.25, progress=False)
    audio = ds.audio()
    # same nuisance: a pair differing in loudness only would be the same waveform, scaled
    lt = counterfactual_pairs(space, 2, factors=["loudness"], seed=2)
    la = render(lt, 16000, 0.25).double()
    ratio = la[1] / la[0]
    np.testing.assert_allclose(ratio[100:].numpy(), ratio[100].item(), rtol=1e-4)
    assert not torch.allclose(audio[0], audio[1])
    with pytest.raises(FactorError, match="not varied"):
        counterfactual_pairs(FactorSpace.create(["f0"]), 2, factors=["loudness"])


def test_audio_io_roundtrip_and_errors(tmp_path):
    x = np.sin(np.arange(1000) / 10).astype(np.float32) * 0.5
    write_audio(tmp_path / "a.wav", x, 8000)
    y, sr = read_audio(tmp_path / "a.wav")
    assert sr == 8000 and np.array_equal(x, y)
    sf.write(tmp_path / "st.wav", np.stack([x, -x], 1), 8000)
    mono, _ = read_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(mono, 0, atol=1e-4)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match="cannot read audio"):
        read_audio(tmp_path / "bad.wav")
    whole = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "trunc.wav").write_bytes(whole[:30])
    with pytest.raises(AudioError):
        read_audio(tmp_path / "trunc.wav")
    with pytest.raises(AudioError, match="no such audio file"):
        read_audio(tmp_path / "missing.wav")
    assert [p.name for p in find_audio(tmp_path)] == ["a.wav", "bad.wav", "st.wav", "trunc.wav"]


def test_unwritable_output_is_reported(tmp_path):
    from ontoscope.artifacts import OutputError

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="a file is in the way"):
        StimulusSet.synthesize(tmp_path / "file" / "s", FactorSpace.create(["f0"]), 2, 8000, 0.3, progress=False)
    assert (tmp_path / "file").read_text() == "x"

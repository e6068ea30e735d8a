"""The HTML report of a study run: built from a small but real run directory (two conv_ae models analysed and
probed for real), checked as HTML, with missing optional tables, from the command line, and in headless
Chromium (driven over the DevTools protocol on a pipe, no extra packages)."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ontoscope.errors import ConfigError
from ontoscope.report import load_run, write_report
from ontoscope.report.heatmaps import LATENT_COLOURS, OPERATIONAL_COLOURS, Cell, status_svg
from ontoscope.report.summaries import best_rows

SR = 16000
FACTORS = ["f0", "loudness", "vibrato_depth"]
SITES = ["encoder.block0", "bottleneck"]
#: model id: (strides, seed, sites measured, latent ontology written)
MODELS = {"conv_ae_strides2x4_seed0": ([2, 4], 0, SITES, True),
          "conv_ae_strides2x4_seed1": ([2, 4], 1, SITES[1:], False),
          "conv_ae_strides4x4_seed0": ([4, 4], 0, SITES[1:], True),
          "conv_ae_strides4x4_seed1": ([4, 4], 1, SITES[1:], False)}
WITH_LATENT = [m for m, v in MODELS.items() if v[3]]
CONFIG_TEXT = """name: tiny
stimuli: {factors: [f0, loudness, vibrato_depth], n: 32, seconds: 0.25, pairs: 0, seed: 0}
models:
  - family: conv_ae
    arch: {width: 2, bottleneck: 4}
    grid: {strides: [[2, 4], [4, 4]]}
    seeds: [0, 1]
    trained: false
report: {examples: 3}
"""
REPO = Path(__file__).resolve().parents[2]


def _comparison(latent: pd.DataFrame, operational: pd.DataFrame) -> pd.DataFrame:
    """The agreement table of a comparison: a prediction held where ``affords`` met ``icv`` or a limit met no ICV."""
    best = best_rows(operational)[["model", "site", "factor", "factor_kind", "status", "icv_score", "family"]]
    c = latent[["model", "site", "factor", "status", "reason"]].rename(columns={"status": "predicted_status"}).merge(
        best.rename(columns={"status": "measured_status", "family": "intervention"}), on=["model", "site", "factor"])
    limited, icv = c["predicted_status"] != "affords", c["measured_status"] == "icv"
    c["prediction"] = limited.map({True: "limited", False: "affords"})
    c["outcome"] = icv.map({True: "icv", False: "not icv"})
    c["held"] = limited != icv
    c["failure"] = [None if h else ("under-predicted" if lim else "over-predicted")
                    for h, lim in zip(c["held"], limited, strict=True)]
    return c.assign(trained=False)


def _knob_means(operational: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Per total stride the mean over seeds of each model's mean ICV score, in the attribution's columns: the
    ``all`` and ``pooled`` groups (equal here) and the ``mean`` and ``best_site`` scores."""
    from scipy import stats

    best = best_rows(operational)
    rows = []
    for kind in ("all", "static", "oscillatory"):
        b = best if kind == "all" else best[best["factor_kind"] == kind]
        per_model = {"mean": b.groupby("model")["icv_score"].mean(),
                     "best_site": b.groupby(["model", "factor"])["icv_score"].max().groupby("model").mean()}
        for score, y in per_model.items():
            y = models.set_index("model")[["total_stride", "seed"]].join(y.rename("y")).dropna()
            for value, g in y.groupby("total_stride"):
                m, se = g["y"].mean(), g["y"].std(ddof=1) / np.sqrt(len(g))
                half = stats.t.ppf(0.975, len(g) - 1) * se if len(g) > 1 else np.nan
                for group in ("all", "pooled"):
                    rows.append({"knob": "total_stride", "scale": "log2", "group": group, "factor_kind": kind,
                                 "score": score, "value": float(value), "mean": m, "ci_low": m - half,
                                 "ci_high": m + half, "n_models": len(g), "n_seeds": g["seed"].nunique()})
    return pd.DataFrame(rows)


def _claims(knobs: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    k = knobs[(knobs["group"] == "pooled") & (knobs["score"] == "mean") & (knobs["factor_kind"] == "all")]
    at = {int(r["value"]): r for _, r in k.iterrows()}
    lo8, hi16 = at[8]["ci_low"], at[16]["ci_high"]
    c1 = "supported" if hi16 < lo8 else "inconclusive"  # False where an interval is NaN
    why1 = ("the intervals do not overlap" if c1 == "supported" else
            "one model at stride 16: no interval" if np.isnan(hi16) else "the intervals overlap")
    held = comparison["held"].mean()
    rows = [
        (1, c1, f"mean ICV score: stride 8 {at[8]['mean']:.3f} [{at[8]['ci_low']:.3f}, {at[8]['ci_high']:.3f}], "
                f"stride 16 {at[16]['mean']:.3f} [{at[16]['ci_low']:.3f}, {at[16]['ci_high']:.3f}]",
         why1),
        (2, "inconclusive", "oscillatory scores undefined in every model", "no oscillatory factor has a score"),
        (3, "inconclusive", "width not swept; depth not swept; data size not swept", "the study sweeps no scale knob"),
        (4, "inconclusive", f"agreement {held:.3f} over {len(comparison)} pairs", "untrained models only"),
    ]
    return pd.DataFrame([{"claim": n, "statement": "", "verdict": v, "numbers": num, "reason": why,
                          "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan} for n, v, num, why in rows])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as a study writes it, from real analyses of tiny untrained conv_ae models (two strides by two
    seeds; latent ontologies for seed 0), with the comparison's tables in the comparison's columns."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and does not stall when the machine is busy
    try:
        return _build_run(tmp_path_factory.mktemp("study") / "tiny")
    finally:
        torch.set_num_threads(threads)


def _build_run(root: Path) -> Path:
    from ontoscope.artifacts import save_json, save_table
    from ontoscope.models.family import build
    from ontoscope.models.spec import parse_spec
    from ontoscope.operators.latent import analyze
    from ontoscope.probing.figures import write_operational_figures
    from ontoscope.probing.operational import operational_ontology
    from ontoscope.stimuli import FactorSpace
    from ontoscope.stimuli.dataset import StimulusSet

    space = FactorSpace.create(FACTORS)
    stimuli = StimulusSet.render(root / "stages" / "stimuli" / "set", space.sample(32, seed=0), SR, 0.25,
                                 progress=False)
    entries, models, latent, operational = [], [], [], []
    for i, (mid, (strides, seed, sites, with_latent)) in enumerate(MODELS.items()):
        spec = parse_spec(dict(family="conv_ae", strides=strides, width=2, bottleneck=4))
        model = build(spec, seed).eval()
        lat_dir, op_dir = f"stages/latent/{mid}", f"stages/operational/{mid}"
        if with_latent:
            lat = analyze(model, factors=FACTORS, seeds=0, ref=mid, n_stimuli=2, seconds=0.2, max_partials=8,
                          empirical=False, sweep_points=8, spectra_freqs=4, seed=seed, progress=False)
            lat.save(root / lat_dir)
            latent.append(lat.factors.assign(model=mid))
        # measuring the edited audio dominates the cost: two clips, one dose level, a time-warp for one model
        op = operational_ontology(model, stimuli, sites=sites, n_steer=2, erasure=False, seed=seed, progress=False,
                                  families=["additive", "gain"] + (["time_warp"] if i == 0 else []),
                                  doses={"additive": [1.0], "gain": [1.0], "time_warp": [0.1]})
        op.save(root / op_dir)
        write_operational_figures(op.table, op.effects, root / op_dir / "figures")
        operational.append(op.table.assign(model=mid))
        models.append({"model": mid, "family": "conv_ae", "total_stride": spec.total_stride, "bottleneck": 4,
                       "antialias": "none", "width": 2, "depth": 1, "data_size": 32, "steps": 0, "seed": seed,
                       "trained": False, "ref": "conv_ae"})
        hashes = {"train": f"t{i}abc123", "latent": f"l{i}def456", "operational": f"o{i}789"}
        entries.append({"model": mid, "ref": "conv_ae", "latent_dir": lat_dir if with_latent else None,
                        "operational_dir": op_dir, "stage_hashes": hashes})
    tables = {"models": pd.DataFrame(models), "latent": pd.concat(latent, ignore_index=True),
              "operational": pd.concat(operational, ignore_index=True)}
    tables["comparison"] = _comparison(tables["latent"], tables["operational"])
    tables["knob_means"] = _knob_means(tables["operational"], tables["models"])
    tables["claims"] = _claims(tables["knob_means"], tables["comparison"])
    tables["control_rates"] = pd.DataFrame({
        "family": ["additive", "gain"], "positives": [6, 1], "found": [6, 1], "sensitivity": [1.0, 1.0],
        "negatives": [10, 4], "false_positives": [0, 0], "fpr": [0.0, 0.0], "passed": [True, True]})
    for name, t in tables.items():
        save_table(root / "tables" / f"{name}.parquet", t)
    import yaml

    save_json(root / "run.json", {"name": "tiny", "config": yaml.safe_load(CONFIG_TEXT), "config_text": CONFIG_TEXT,
                                  "versions": {"ontoscope": "0.1.0", "python": sys.version.split()[0],
                                               "torch": __import__("torch").__version__},
                                  "created": "2025-01-01T00:00:00+00:00", "models": entries,
                                  "stimuli_hash": "5eed5eed"})
    return root


class _Elements(HTMLParser):
    """Tags in document order with their attributes, and the text of the whole document."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Elements:
    p = _Elements()
    p.feed(path.read_text())
    return p


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir)


@pytest.mark.slow
def test_report_holds_every_section_in_order_with_its_figures_and_audio(run_dir, report):
    assert report == run_dir / "report.html" and report.is_file()
    html = report.read_text()
    doc = _parse(report)
    ids = [a["id"] for t, a in doc.tags if t == "section"]
    assert ids == ["controls", "claims", "ontologies", "knobs", "operators", "examples", "reproducibility"]
    # 0. can the instrument see: the controls' rates per family, first
    assert "controls passed" in html and html.index('id="controls"') < html.index('id="claims"')
    controls = html[html.index('id="controls"'):html.index('id="claims"')]
    assert "6 of 6" in controls and "0 of 10" in controls and "gain" in controls
    # 1. the four claims, with their numbers and verdict badges
    claims = [a for t, a in doc.tags if t == "div" and "data-claim" in a]
    assert [c["data-claim"] for c in claims] == ["1", "2", "3", "4"]
    badges = [a["class"] for t, a in doc.tags if t == "span" and a.get("class", "").startswith("badge")][1:]
    verdicts = pd.read_parquet(run_dir / "tables" / "claims.parquet")["verdict"].tolist()
    assert badges == ["badge " + v.replace(" ", "-") for v in verdicts]
    claims_table = pd.read_parquet(run_dir / "tables" / "claims.parquet")
    assert all(escape(t) in html for t in [*claims_table["numbers"], *claims_table["reason"]])
    assert html.index('id="claims"') < html.index('id="ontologies"')
    style = html[html.index("<style>"):html.index("</style>")]
    assert "&#" not in style and "&quot;" not in style  # the style sheet is not escaped
    # 2. a latent heatmap per model with a latent ontology, an operational one per model; failures outlined
    svgs = [a for t, a in doc.tags if t == "svg"]
    assert len(svgs) == len(WITH_LATENT) + len(MODELS) and all("heatmap" in a["class"] for a in svgs)
    statuses = {a["data-status"] for t, a in doc.tags if t == "g" and "data-status" in a}
    latent = pd.read_parquet(run_dir / "tables" / "latent.parquet")
    assert set(latent["status"]) <= statuses <= set(LATENT_COLOURS) | set(OPERATIONAL_COLOURS)
    comparison = pd.read_parquet(run_dir / "tables" / "comparison.parquet")
    assert html.count('stroke-width="2.5"') == 2 * int((~comparison["held"]).sum()) > 0
    for mid, g in comparison.groupby("model"):
        assert f"the prediction held at {int(g['held'].sum())} of\n{len(g)} cells" in html, mid
    # 3.-5. every <img> and <audio> refers to a file that exists, inside RUN/report; nothing from the network
    srcs = [(t, a["src"]) for t, a in doc.tags if t in ("img", "audio", "script", "link") and "src" in a]
    assert all(not re.match(r"[a-z]+://", s) and s.startswith("report/") for _, s in srcs), srcs
    assert all((run_dir / s).is_file() for _, s in srcs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    imgs = [s for t, s in srcs if t == "img"]
    assert "report/knobs.png" in imgs
    latent_pngs = sum(len(json.loads((run_dir / f"stages/latent/{m}/latent.json").read_text())["figures"])
                      for m in WITH_LATENT)
    assert latent_pngs >= 10 and len([s for s in imgs if "/latent/" in s]) == latent_pngs
    assert len([s for s in imgs if "/operational/" in s]) == 2 * len(MODELS)
    audio = [s for t, s in srcs if t == "audio"]
    spectrograms = [s for s in imgs if "/examples/" in s]
    assert len(audio) == 2 * len(spectrograms) and 2 <= len(spectrograms) <= 3 * len(MODELS)
    assert all(s.endswith(("_base.wav", "_steered.wav")) for s in audio)
    # the first example of each model is its best static factor at the bottleneck
    op = best_rows(pd.read_parquet(run_dir / "tables" / "operational.parquet"))
    for mid in MODELS:
        shown = [s for s in spectrograms if f"/{mid}/" in s]
        assert shown and shown[0].endswith(f"bottleneck__{_best_static(op, mid)}.png"), shown
    assert "<code>bottleneck</code> (bottleneck):" in html  # each example names its site's role
    # 6. reproducibility: config text, versions, seeds, stage hashes
    text = "".join(doc.text)
    assert "grid: {strides: [[2, 4], [4, 4]]}" in text and "5eed5eed" in text and "stimuli seed" in text
    assert all(h in text for h in ("t0abc123", "l1def456", "o0789", "0.1.0", "torch"))


def test_the_bottleneck_of_the_examples_is_found_by_role_not_by_name():
    from ontoscope.report.summaries import bottleneck_site, site_roles

    rows = pd.DataFrame({"site": ["decoder.block0", "encoder.conv0", "z", "quantizer"], "site_index": [3, 0, 1, 2],
                         "role": ["decoder", "encoder", "bottleneck", "quantizer"]})
    assert bottleneck_site(rows) == "z" and site_roles(rows)["quantizer"] == "quantizer"
    pitch = pd.DataFrame({"site": ["encoder.conv1", "head"], "role": ["encoder", "head"]})
    assert bottleneck_site(pitch) == "head"  # no bottleneck: the deepest site
    assert bottleneck_site(pd.DataFrame({"site": ["encoder.block0", "bottleneck", "decoder.block0"]})) == "bottleneck"
    assert bottleneck_site(rows.drop(columns="role")) == "decoder.block0"  # a table without roles, no such name
    assert bottleneck_site(pd.DataFrame(columns=["site", "role"])) is None and site_roles(pitch.head(0)) == {}


def _best_static(op: pd.DataFrame, mid: str) -> str:
    rows = op[(op["model"] == mid) & (op["site"] == "bottleneck") & (op["factor_kind"] == "static")]
    rows = rows.assign(s=rows["icv_score"].fillna(-1), i=(rows["status"] == "icv").astype(int))
    return rows.sort_values(["i", "s"], ascending=False, kind="stable")["factor"].iloc[0]


def test_missing_optional_tables_and_directories_are_reported_not_fatal(run_dir, report, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("report*", ".report*"))
    for name in ("comparison", "claims", "knob_means", "control_rates"):
        (bare / "tables" / f"{name}.parquet").unlink()
    shutil.rmtree(bare / "stages" / "operational" / "conv_ae_strides4x4_seed0" / "examples")
    shutil.rmtree(bare / "stages" / "latent" / "conv_ae_strides4x4_seed0")
    html = write_report(bare).read_text()
    assert "were not evaluated" in html and html.count("not evaluated</span>") == 4
    assert "the instrument was not checked on\nits controls" in html
    assert "directory stages/latent/conv_ae_strides4x4_seed0 (named in run.json) is missing" in html
    assert "no steering examples" in html
    # the latent table still draws the heatmap of the model whose directory is gone
    assert html.count("<svg") == len(WITH_LATENT) + len(MODELS)
    # without knob_means.parquet the same numbers are computed from the operational and models tables

    def numbers(text):
        return re.findall(r'<td class="num">([^<]*)</td>', text[text.index('id="knobs"'):text.index('id="operators"')])

    assert "Computed from tables/operational.parquet" in html and numbers(html) == numbers(report.read_text())
    # writing again replaces the assets without leaving staging directories behind
    again = write_report(bare, examples=0).read_text()
    assert "<audio" not in again and "switched off" in again and not list((bare / "report").rglob("*.wav"))
    assert not [p for p in bare.iterdir() if p.name.startswith(".report")]


def test_heatmap_svg_colours_statuses_flags_failures_and_escapes_names():
    cells = {("f0", "bottleneck"): Cell("icv", "f0 <ok>", label=".91"),
             ("loudness", "bottleneck"): Cell("entangled", "x", flagged=True),
             ("f0", "enc<0>"): Cell("mystery", "?")}
    svg = str(status_svg(cells, ["f0", "loudness"], ["enc<0>", "bottleneck"], OPERATIONAL_COLOURS, "op"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert f'fill="{OPERATIONAL_COLOURS["icv"]}"' in svg and 'stroke-width="2.5"' in svg
    assert "enc&lt;0&gt;" in svg and "f0 &lt;ok&gt;" in svg and "<0>" not in svg
    assert 'class="empty"' in svg and "not measured" in svg and 'fill="#607d8b"' in svg


def test_not_a_finished_run_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such run directory"):
        write_report(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="not a finished study run: run.json is missing"):
        write_report(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"name": "x", "models": []}))
    with pytest.raises(ConfigError, match="tables/models.parquet is missing"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable run.json"):
        load_run(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_command(run_dir, tmp_path, monkeypatch, capsys):
    from ontoscope import cli

    monkeypatch.setattr(sys, "argv", ["ontoscope", "report", str(run_dir)])
    cli.main()
    assert str(run_dir / "report.html") in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["ontoscope", "report", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and "run.json is missing" in lines[0] and "Traceback" not in err


def test_the_report_reads_files_only(run_dir, tmp_path):
    """Writing a report imports neither the study nor torch: it needs the run's files, nothing else."""
    run = tmp_path / "copy"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report*", ".report*"))
    code = ("import sys; from ontoscope.report import write_report; write_report(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith('ontoscope.study') or m.split('.')[0] == 'torch'))")
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]" and (run / "report.html").is_file()


# ---------------------------------------------------------------------------------------------- headless Chromium
class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out,
    messages separated by NUL bytes)."""

    def __init__(self, binary: str, profile: Path, log: Path):
        self._cmd_r, self._cmd_w = os.pipe()
        self._ev_r, self._ev_w = os.pipe()
        # bash puts the pipe ends on fds 3 and 4, where the browser looks for them
        plumbing = f'exec "$@" 3<&{self._cmd_r} 4>&{self._ev_w} {self._cmd_r}<&- {self._ev_w}>&-'
        self._log = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["bash", "-c", plumbing, "chromium", binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--mute-audio", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(self._cmd_r, self._ev_w), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(self._cmd_r)
        os.close(self._ev_w)
        self._buf, self._id, self.events, self.session = b"", 0, [], None

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        import select

        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self._id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)
            ready, _, _ = select.select([self._ev_r], [], [], max(0.0, end - time.monotonic()))
            chunk = os.read(self._ev_r, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError(f"{method}: no answer from Chromium (see {self._log.name})")
            self._buf += chunk

    def open(self, url: str, width: int, height: int) -> None:
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.evaluate(expression):
                return True
            time.sleep(0.1)
        return False

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e.get("method") == "Runtime.exceptionThrown":
                out.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except RuntimeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._cmd_w)
        os.close(self._ev_r)
        self._log.close()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_in_headless_chromium(run_dir, report, tmp_path):
    binary = _chromium()
    if binary is None or shutil.which("bash") is None:
        if os.environ.get("ONTOSCOPE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (ONTOSCOPE_REQUIRE_BROWSER) but not installed")
        pytest.skip("Chromium is not installed: `apt-get install chromium` (make setup does, as root)")
    browser = DevTools(binary, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        browser.open(report.resolve().as_uri(), 1280, 2000)
        # every picture decoded, every player with its audio's metadata loaded
        assert browser.wait_for("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert browser.wait_for("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
        seen = browser.evaluate("""JSON.stringify({
            imgs: document.images.length,
            broken: [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src),
            svgs: document.querySelectorAll('svg.heatmap').length,
            cells: document.querySelectorAll('svg.heatmap g.cell').length,
            audio: [...document.querySelectorAll('audio')].map(a => [a.duration, a.error && a.error.code]),
            badges: document.querySelectorAll('#claims .badge').length,
            badge: [document.querySelector('#claims .badge').className,
                    getComputedStyle(document.querySelector('#claims .badge')).backgroundColor],
            width: document.querySelector('main').getBoundingClientRect().width})""")
        seen = json.loads(seen)
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
        errors = browser.errors()
    finally:
        browser.close()
    assert errors == [], errors
    assert seen["broken"] == [] and seen["imgs"] >= 15
    assert seen["svgs"] == len(WITH_LATENT) + len(MODELS) and seen["cells"] > 0 and seen["badges"] == 4
    assert len(seen["audio"]) >= 4 and all(d > 0.2 and err is None for d, err in seen["audio"]), seen["audio"]
    colours = {"badge supported": "rgb(46, 125, 50)", "badge not-supported": "rgb(198, 40, 40)",
               "badge inconclusive": "rgb(239, 143, 0)", "badge other": "rgb(120, 144, 156)"}
    assert seen["width"] > 1000 and colours[seen["badge"][0]] == seen["badge"][1]  # the style sheet applies
    png = tmp_path / "report.png"
    png.write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    if os.environ.get("ONTOSCOPE_SCREENSHOT"):
        (REPO / "docs" / "figures").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, REPO / "docs" / "figures" / "report_screenshot.png")

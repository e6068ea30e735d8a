"""The ``ontoscope`` command.

Every command turns an :class:`~ontoscope.errors.OntoscopeError` into one line
on stderr and a non-zero exit, without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer
import yaml
from rich.console import Console
from rich.table import Table

from ontoscope.errors import ConfigError, OntoscopeError

app = typer.Typer(
    name="ontoscope",
    help="Which features of sound can a neural audio model's architecture turn into controllable variables?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("--factors is empty; give comma-separated factor names, e.g. f0,loudness")
    return names


@app.command()
def stimuli(
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Directory of the new stimulus set."),
    *,
    n: int = typer.Option(256, "--n", help="Number of clips (pairs per factor with --pairs)."),
    sr: int = typer.Option(16000, "--sr", help="Sample rate in Hz."),
    seconds: float = typer.Option(1.0, "--seconds", help="Duration of every clip in seconds."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same set."),
    factors: str = typer.Option(None, "--factors", help="Comma-separated factors to vary (default: all "
                                "but inharmonicity; with --source soundfont: f0, loudness, vibrato and tremolo)."),
    method: str = typer.Option("uniform", "--method", help="Sampling: uniform, grid or lhs."),
    pairs: bool = typer.Option(False, "--pairs", help="Make counterfactual pairs: n per varied factor."),
    source: str = typer.Option("synth", "--source", help="Where the audio comes from: synth (the synthesizer) "
                               "or soundfont (recorded instruments from a General MIDI SoundFont)."),
    bank: Path = typer.Option(None, "--bank", help="SoundFont .sf2 bank (--source soundfont; default "
                              "$ONTOSCOPE_SOUNDFONT, else the system's FluidR3_GM.sf2)."),
    programs: str = typer.Option(None, "--programs", help="Comma-separated GM programs (--source soundfont; "
                                 "default 40,73: violin, flute)."),
    export: Path = typer.Option(None, "--export", help="Also write WAV files and factors.csv here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different set at OUT."),
) -> None:
    """Make a stimulus set: synthesized tones whose factors are known exactly, or recorded instruments."""
    # lazy: keeps the command line fast
    from ontoscope.descriptors.renders import SOURCES, render_stimuli  # noqa: PLC0415
    from ontoscope.stimuli.factors import FactorSpace  # noqa: PLC0415  # lazy: keeps the command line fast

    if source not in SOURCES:
        raise ConfigError(f"unknown --source {source!r}; use {' or '.join(SOURCES)}")
    if source == "synth" and (bank is not None or programs is not None):
        raise ConfigError("--bank and --programs need --source soundfont")
    names = _names(factors)
    if source == "soundfont" and names is None:
        # lazy: keeps the command line fast
        from ontoscope.stimuli.soundfont_set import DEFAULT_FACTORS  # noqa: PLC0415

        names = list(DEFAULT_FACTORS)
    space = FactorSpace.create(names)
    space.check_sample_rate(sr)
    space.check_duration(seconds)
    if method not in ("uniform", "grid", "lhs"):
        raise ConfigError(f"unknown --method {method!r}; use uniform, grid or lhs")
    ds = render_stimuli(out_dir, space, n, sr, seconds, seed, source=source, bank=bank, programs=programs,
                        method=method, pairs=pairs, overwrite=overwrite)
    out.print(f"{len(ds)} clips at {sr} Hz, {seconds} s each -> {ds.root}")
    for inst in ds.manifest.get("meta", {}).get("instruments", []):
        swamped = [f for f in ("vibrato", "tremolo", "attack") if inst.get(f"swamps_{f}")]
        if swamped:
            out.print(f"program {inst['instrument']} ({inst['instrument_name']}): its own "
                      f"{' and '.join(swamped)} swamps the control (see swamped_* in factors.parquet)",
                      markup=False, highlight=False)
    if export is not None:
        ds.export(export)
        out.print(f"WAV files and factors.csv -> {export}")


@app.command()
def measure(
    path: Path = typer.Argument(..., help="A WAV/FLAC file, a folder of them, or a stimulus set."),
    *,
    table_out: Path = typer.Option(..., "--out", help="Output table, .parquet or .csv."),
    fmin: float = typer.Option(50.0, "--fmin", help="Lowest f0 searched, Hz."),
    fmax: float = typer.Option(2000.0, "--fmax", help="Highest f0 searched, Hz."),
) -> None:
    """Measure every factor (and the standard spectral descriptors) from audio."""
    from ontoscope.artifacts import save_table  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.descriptors.files import measure_path  # noqa: PLC0415  # lazy: keeps the command line fast

    if table_out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {table_out}: use a .parquet or .csv file name")
    table, bad = measure_path(path, fmin=fmin, fmax=fmax)
    save_table(table_out, table)
    out.print(f"{len(table) - len(bad)} clips measured -> {table_out}")
    for name, why in bad:
        err.print(f"skipped {name}: {why}", markup=False, highlight=False)


@app.command()
def train(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="Architecture spec (family and knobs)."),
    *,
    data: Path = typer.Option(..., "--data", help="Stimulus set to train on."),
    out_dir: Path = typer.Option(..., "--out", help="Checkpoint directory (resumes an unfinished run)."),
    steps: int = typer.Option(None, "--steps", help="Training steps (default from --config, else 6000)."),
    config: Path = typer.Option(None, "--config", help="Training config YAML (steps, batch_size, lr, ...)."),
    seed: int = typer.Option(None, "--seed", help="Seed of initialisation and batches."),
) -> None:
    """Train a model of the family on a stimulus set; checkpoints are safetensors plus a JSON card."""
    from ontoscope.models.spec import load_spec  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.models.train import parse_config  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.models.train import train as train_model  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.stimuli.dataset import StimulusSet  # noqa: PLC0415  # lazy: keeps the command line fast

    spec = load_spec(spec_path)
    cfg: dict = {}
    if config is not None:
        try:
            cfg = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{config}: cannot read the training config ({e})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{config}: a training config must be a mapping of keys to values")
    if steps is not None:
        cfg["steps"] = steps
    if seed is not None:
        cfg["seed"] = seed
    ds = StimulusSet.load(data)
    _, card = train_model(spec, ds, out_dir, parse_config(cfg))
    out.print(f"trained {spec.family} for {card['step']} steps; held-out loss {card['eval_loss']:.4f} -> {out_dir}")


@app.command("models")
def list_models_cmd() -> None:
    """List the model families and the references of real models."""
    from ontoscope.models.registry import list_models  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.models.spec import FAMILIES  # noqa: PLC0415  # lazy: keeps the command line fast

    rows = [(f"family {name}", (cls.__doc__ or "").strip().splitlines()[0]) for name, cls in FAMILIES.items()]
    for ref, text in rows + [r for r in list_models() if not r[0].startswith("family")]:
        out.print(f"{ref:24s} {text}", markup=False, highlight=False)


@app.command()
def analyze(
    model_ref: str = typer.Argument(..., metavar="MODEL_REF", help="A checkpoint directory, a family spec YAML, "
                                    "crepe:tiny|full, pesto or hf:NAME (see `ontoscope models`)."),
    *,
    out_dir: Path = typer.Option(..., "--out", help="Directory for the Parquet tables, figures and latent.json."),
    fmt: str = typer.Option("table", "--format", help="What to print: table or json."),
    seeds: int = typer.Option(5, "--seeds", help="Random initialisations for the Jacobians at init (0: none)."),
    factors: str = typer.Option(None, "--factors", help="Comma-separated factors (default: all but inharmonicity)."),
    sites: str = typer.Option(None, "--sites", help="Comma-separated sites (default: every site)."),
    n_stimuli: int = typer.Option(4, "--stimuli", help="Stimuli per Jacobian batch."),
    seconds: float = typer.Option(0.25, "--seconds", help="Length of the Jacobian stimuli, seconds."),
    sweep_points: int = typer.Option(192, "--sweep-points", help="Frequencies of the sine sweep."),
    no_jacobians: bool = typer.Option(False, "--no-jacobians", help="Skip the feature Jacobians."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Write tables only."),
    seed: int = typer.Option(0, "--seed", help="Seed of random weights, stimuli and sines."),
    quick: bool = typer.Option(False, "--quick", help="A first look: one initialisation, two stimuli, 48 sweep "
                               "frequencies, no gradient check (said in the output)."),
    sweep: str = typer.Option("needed", "--sweep", help="Sites swept with sines: needed (those a status can "
                              "depend on) or all."),
) -> None:
    """Latent ontology: what a model's operators allow at every site, with the numbers and reasons."""
    from ontoscope.operators.cli import analyze_command  # noqa: PLC0415  # lazy: keeps the command line fast

    site_list = None if sites is None else [s.strip() for s in sites.split(",") if s.strip()]
    if sites is not None and not site_list:
        raise ConfigError("--sites is empty; give comma-separated site names, e.g. bottleneck,encoder.block0")
    analyze_command(model_ref, out_dir, fmt=fmt, seeds=seeds, factors=_names(factors), sites=site_list,
                    n_stimuli=n_stimuli, seconds=seconds, sweep_points=sweep_points, jacobians=not no_jacobians,
                    figures=not no_figures, seed=seed, quick=quick, sweep=sweep, console=out)


@app.command()
def probe(
    model_ref: str = typer.Argument(..., metavar="MODEL_REF", help="A checkpoint directory, a family spec YAML, "
                                    "crepe:tiny|full, pesto or hf:NAME (see `ontoscope models`)."),
    *,
    data: Path = typer.Option(..., "--data", help="Stimulus set to capture the sites over."),
    out_dir: Path = typer.Option(..., "--out", help="Directory for the capture, tables and figures (resumes)."),
    sites: str = typer.Option(None, "--sites", help="Comma-separated sites (default: every site)."),
    views: str = typer.Option("frames,pooled,modulation,timing", "--views", help="Comma-separated views."),
    probes: str = typer.Option("ridge,mlp", "--probes", help="Comma-separated probes: ridge, mlp."),
    chunk: int = typer.Option(64, "--chunk", help="Clips per forward pass."),
    interventions: bool = typer.Option(False, "--interventions", help="Also intervene (every family that "
                                       "applies): the ICV table, dose-response curves and audio examples."),
    families: str = typer.Option(None, "--families", help="Comma-separated intervention families (default: all "
                                 "that apply): additive, gain, time_warp, place_shift, modulation, interchange, das."),
    pairs: Path = typer.Option(None, "--pairs", help="Counterfactual pairs (`ontoscope stimuli --pairs`) for "
                               "interchange and DAS."),
    das: bool = typer.Option(True, "--das/--no-das", help="Fit a DAS subspace per (site, factor) on the pairs."),
    sae: bool = typer.Option(False, "--sae", help="Fit a TopK sparse autoencoder per site (frames view)."),
    seed: int = typer.Option(0, "--seed", help="Seed of random weights, splits and probes."),
) -> None:
    """Operational ontology: probe what every site encodes; with --interventions, what controls it."""
    from ontoscope.probing.cli import probe_command  # noqa: PLC0415  # lazy: keeps the command line fast

    def names(text: str | None, option: str) -> list[str] | None:
        if text is None:
            return None
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise ConfigError(f"{option} is empty; give comma-separated names")
        return items

    probe_command(model_ref, data, out_dir, sites=names(sites, "--sites"), views=names(views, "--views"),
                  probes=names(probes, "--probes"), chunk=chunk, interventions=interventions, pairs=pairs,
                  families=names(families, "--families"), das=das, sae=sae, seed=seed, console=out)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished study run (run.json and tables/)."),
    *,
    examples: int = typer.Option(None, "--examples", help="Steering examples per model (default: the "
                                 "config's report.examples, else 3)."),
) -> None:
    """Write RUN_DIR/report.html: claims, both ontologies per model, knobs, operator plots, steering audio."""
    from ontoscope.report import write_report  # noqa: PLC0415  # lazy: keeps the command line fast

    if examples is not None and examples < 0:
        raise ConfigError(f"--examples must be 0 or more, not {examples}")
    path = write_report(run_dir, examples=examples)
    out.print(f"report -> {path}", markup=False, highlight=False)


@app.command()
def demo(
    *,
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Where the stimulus set and tables go."),
    n: int = typer.Option(256, "--n", help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    factors: str = typer.Option(None, "--factors", help="Comma-separated factors to vary (default: all "
                                "but inharmonicity)."),
) -> None:
    """Synthesize a stimulus set, measure it back, and print how accurately each factor returns."""
    from ontoscope.artifacts import save_table  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.descriptors import measure as measure_audio  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.descriptors.accuracy import round_trip_errors  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.stimuli.dataset import StimulusSet  # noqa: PLC0415  # lazy: keeps the command line fast
    from ontoscope.stimuli.factors import FactorSpace  # noqa: PLC0415  # lazy: keeps the command line fast

    space = FactorSpace.create(_names(factors))
    ds = StimulusSet.synthesize(out_dir / "stimuli", space, n, 16000, 1.0, seed=seed, overwrite=True)
    measured = measure_audio(ds.audio(), ds.sr, progress=None)
    measured.insert(0, "clip", ds.factors["clip"].to_numpy())
    save_table(out_dir / "measured.parquet", measured)
    acc = round_trip_errors(ds.factors, measured)
    save_table(out_dir / "accuracy.csv", acc)
    _print_table(acc[acc["n"] > 0], f"Round trip: {n} synthesized clips at 16 kHz, 1 s, measured back")
    out.print(f"stimuli: {ds.root}\ntables: {out_dir / 'measured.parquet'}, {out_dir / 'accuracy.csv'}")


def _print_table(df, title: str) -> None:
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c), justify="right" if df[c].dtype.kind in "fi" else "left")
    for _, row in df.iterrows():
        t.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    (out if out.is_terminal else Console(soft_wrap=True, width=160)).print(t)


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Study config (YAML), e.g. configs/demo.yaml."),
    *,
    out_dir: Path = typer.Option(None, "--out", help="Run directory (default: runs/<name>); resumes."),
    force: str = typer.Option(None, "--force", help="Comma-separated stages to recompute (train, latent, ...)."),
    executor: str = typer.Option("local", "--executor", help="local (in-process) or ray (a task per model)."),
    address: str = typer.Option(None, "--address", help="Ray cluster: auto, or ray://HOST:PORT (default: a new "
                                "local one)."),
) -> None:
    """Run a study: stimuli, training, both ontologies, their comparison and the report (cached, resumable)."""
    from ontoscope.study import load_config, run_study  # noqa: PLC0415  # lazy: keeps the command line fast

    cfg, _ = load_config(config)
    run_dir = out_dir or Path("runs") / cfg.name
    stages = [f.strip() for f in force.split(",") if f.strip()] if force else []
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; use local or ray")
    path = run_study(config, run_dir, force=stages, executor=executor, address=address,
                     console=lambda line: out.print(line, markup=False, highlight=False))
    out.print(f"report -> {path}")


@app.command("status")
def status_cmd(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A study run directory.")) -> None:
    """What is done in a study run directory."""
    from ontoscope.study import study_status  # noqa: PLC0415  # lazy: keeps the command line fast

    t = study_status(run_dir)
    table = Table(title=f"{run_dir}: {int(t['done'].sum())} of {len(t)} stages done")
    for c in ("stage", "label", "key", "done"):
        table.add_column(c)
    for r in t.itertuples(index=False):
        table.add_row(r.stage, r.label, r.key, "yes" if r.done else "no")
    out.print(table)


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except OntoscopeError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume", markup=False)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()

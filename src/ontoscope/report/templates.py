"""The report's jinja2 template and style sheet (kept in Python so that they ship with the package)."""

from __future__ import annotations

__all__ = ["REPORT", "STYLE"]

STYLE = """
:root { --ink: #1c2430; --muted: #5f6b7a; --line: #d8dee6; --bg: #fbfcfd; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
       "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
header, main, footer { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; } h4 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); }
nav a { margin-right: 14px; color: #1565c0; text-decoration: none; font-size: 13px; }
.meta, .note { color: var(--muted); font-size: 12.5px; }
.claims { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }
.claim { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.claim .numbers { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted);
                  white-space: pre-wrap; margin-top: 6px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         color: #fff; background: #78909c; }
.badge.supported { background: #2e7d32; } .badge.not-supported { background: #c62828; }
.badge.inconclusive { background: #ef8f00; } .badge.failed { background: #6a1b9a; }
.model { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px 12px;
         margin: 12px 0; }
.pair { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.pair figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
.legend { font-size: 12px; margin: 2px 0 6px; }
.legend span { display: inline-block; margin-right: 10px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px; vertical-align: -1px;
            border: 1px solid #0002; }
svg.heatmap text { font: 10.5px Arial, "Liberation Sans", "DejaVu Sans", sans-serif; fill: var(--ink); }
svg.heatmap text.val { font-size: 9px; }
svg.heatmap rect.empty { fill: #fff; stroke: #cfd8dc; stroke-dasharray: 2 2; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
.figures figure { margin: 0; max-width: 100%; }
.figures img { max-width: 100%; max-height: 380px; border: 1px solid var(--line); background: #fff; }
img.wide { max-width: 100%; border: 1px solid var(--line); background: #fff; }
.example { display: grid; grid-template-columns: 280px 1fr; gap: 14px; border-top: 1px solid var(--line);
           padding: 10px 0; }
.example audio { width: 260px; height: 32px; display: block; margin: 2px 0 6px; }
.example img { max-width: 100%; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #fff; border: 1px solid var(--line); padding: 10px; overflow-x: auto; font-size: 12px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { border-top: 1px solid var(--line); margin-top: 30px; padding: 10px 20px 30px; }
"""

REPORT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ontoscope report: {{ run.name }}</title>
<style>{{ style }}</style>
</head>
<body>
<header>
<h1>ontoscope report: {{ run.name }}</h1>
<p class="meta">{{ models | length }} model{{ "" if models | length == 1 else "s" }}{% if run.created %};
run created {{ run.created }}{% endif %}; latent ontology (predicted from the architecture) against the
operational ontology (measured by probing and intervening).</p>
<nav><a href="#controls">Controls</a>
<a href="#claims">Claims</a><a href="#ontologies">Ontologies</a><a href="#knobs">ICV score and knobs</a>
<a href="#operators">Operator plots</a><a href="#examples">Steering examples</a>
<a href="#reproducibility">Reproducibility</a></nav>
</header>
<main>

<section id="controls">
<h2>0. Can the instrument see?</h2>
{% if controls.rows %}
<p class="{{ 'meta' if controls.passed else 'note' }}">
<span class="badge {{ 'supported' if controls.passed else 'failed' }}">
{{ "controls passed" if controls.passed else "instrument failed its controls" }}</span>
The operational measurement was run on control models whose answer is known by construction (a trained
controller between a factor-reading encoder and the synthesizer, over {{ controls.seeds }} training seed(s); the
waveform itself, with and without a level-normalising decoder; a pitch place code, ordered and shuffled).
Sensitivity is the share of cells that must be ICVs that were found so; false positives the share of cells that
must not be that were. {% if not controls.passed %}Below the {{ controls.min_sensitivity }} sensitivity or above the
{{ controls.max_fpr }} false-positive rate in some family, the claims are not judged.{% endif %}</p>
<table class="data"><thead><tr><th>family</th><th>positive cells found</th><th>sensitivity</th>
<th>false positives</th><th>false-positive rate</th><th>passed</th></tr></thead><tbody>
{% for r in controls.rows %}<tr><td>{{ r.family }}</td><td>{{ r.found }}</td><td>{{ r.sensitivity }}</td>
<td>{{ r.fp }}</td><td>{{ r.fpr }}</td><td>{{ r.passed }}</td></tr>
{% endfor %}</tbody></table>
{% else %}
<p class="note">This run has no control table (tables/control_rates.parquet): the instrument was not checked on
its controls, so its measurements below have not been shown to see what is there.</p>
{% endif %}
</section>

<section id="claims">
<h2>1. Claims</h2>
{% if not claims_measured %}<p class="note">This run has no claims table (tables/claims.parquet): the claims
below were not evaluated.</p>{% endif %}
<div class="claims">
{% for c in claims %}
<div class="claim" data-claim="{{ c.claim }}">
<div><strong>Claim {{ c.claim }}</strong> <span class="badge {{ c.badge }}">{{ c.verdict }}</span></div>
<div>{{ c.statement }}</div>
{% if c.numbers %}<div class="numbers">{{ c.numbers }}</div>{% endif %}
{% if c.reason %}<div class="meta">{{ c.reason }}</div>{% endif %}
</div>
{% endfor %}
</div>
</section>

<section id="ontologies">
<h2>2. Latent and operational ontology per model</h2>
<p class="note">Rows are factors, columns sites. Left: the status the architecture predicts (hover a cell for
the reason). Right: the status measured (the intervention family that controls the pair: an ICV if any family
makes it one, else the best score), labelled with the ICV score.
A heavy outline marks a cell where the prediction did not hold (over-predicted: afforded but
not an ICV; under-predicted: limited but an ICV); a dashed cell was not measured.</p>
<div class="legend"><strong>predicted</strong>
{% for s, c in latent_colours.items() %}<span><i style="background: {{ c }}"></i>{{ s }}</span>{% endfor %}</div>
<div class="legend"><strong>measured</strong>
{% for s, c in operational_colours.items() %}<span><i style="background: {{ c }}"></i>{{ s }}</span>{% endfor %}</div>
{% for m in models %}
<div class="model" id="model-{{ m.slug }}">
<h3>{{ m.model }}</h3>
<p class="meta">{{ m.knobs }}{% if m.agreement %}; the prediction held at {{ m.agreement.held }} of
{{ m.agreement.total }} cells ({{ "%.0f" | format(100 * m.agreement.share) }} %){% endif %}</p>
{% for n in m.notes %}<p class="note">{{ n }}</p>{% endfor %}
<div class="pair">
<figure>{% if m.latent_svg %}{{ m.latent_svg }}{% else %}<p class="note">no latent ontology</p>{% endif %}
<figcaption>latent ontology (predicted)</figcaption></figure>
<figure>{% if m.operational_svg %}{{ m.operational_svg }}{% else %}<p class="note">no operational ontology</p>
{% endif %}<figcaption>operational ontology (measured)</figcaption></figure>
</div>
</div>
{% endfor %}
</section>

<section id="knobs">
<h2>3. ICV score against the knobs</h2>
{% if knobs.img %}
<img class="wide" src="{{ knobs.img }}" alt="mean ICV score against each knob, static and oscillatory factors">
<p class="note">{{ knobs.source }}</p>
<details><summary>the numbers</summary>
<table><tr><th>knob</th><th>value</th><th>factors</th><th>mean</th><th>95 % interval</th><th>n</th></tr>
{% for r in knobs.rows %}<tr><td>{{ r.knob }}</td><td>{{ r.value }}</td><td>{{ r.factor_kind }}</td>
<td class="num">{{ r.mean }}</td><td class="num">{{ r.ci }}</td><td class="num">{{ r.n }}</td></tr>{% endfor %}
</table></details>
{% else %}<p class="note">{{ knobs.source }}</p>{% endif %}
</section>

<section id="operators">
<h2>4. Operator plots</h2>
{% for m in models %}
<h3>{{ m.model }}</h3>
{% if m.figures %}<div class="figures">
{% for f in m.figures %}<figure><img src="{{ f.src }}" alt="{{ f.caption }}" loading="eager">
<figcaption>{{ f.caption }}</figcaption></figure>{% endfor %}
</div>{% else %}<p class="note">no figures were written for this model</p>{% endif %}
{% endfor %}
</section>

<section id="examples">
<h2>5. Steering examples</h2>
<p class="note">One held-out clip before (base) and after the largest static step along the site's direction
for the factor (steered), as the model produces them.</p>
{% for m in models %}
<h3>{{ m.model }}</h3>
{% for e in m.examples %}
<div class="example">
<div><strong>{{ e.factor }}</strong> at <code>{{ e.site }}</code>{% if e.role %} ({{ e.role }}){% endif %}:
{{ e.status }}, ICV score {{ e.score }}
<div class="meta">{{ e.why }}; {{ e.measures }}</div>
<div class="meta">base</div><audio controls preload="metadata" src="{{ e.base }}"></audio>
<div class="meta">steered</div><audio controls preload="metadata" src="{{ e.steered }}"></audio></div>
<div><img src="{{ e.spectrogram }}" alt="spectrograms of {{ e.factor }} at {{ e.site }}, base and steered"></div>
</div>
{% else %}<p class="note">{{ m.no_examples }}</p>
{% endfor %}
{% endfor %}
</section>

<section id="reproducibility">
<h2>6. Reproducibility</h2>
<table>
<tr><th>run</th><td>{{ run.name }}</td></tr>
{% if run.created %}<tr><th>created</th><td>{{ run.created }}</td></tr>{% endif %}
{% if run.stimuli_hash %}<tr><th>stimuli hash</th><td><code>{{ run.stimuli_hash }}</code></td></tr>{% endif %}
{% for k, v in run.seeds %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
</table>
<h3>Versions</h3>
<table>{% for k, v in run.versions %}<tr><th>{{ k }}</th><td><code>{{ v }}</code></td></tr>{% endfor %}</table>
<h3>Models and stage hashes</h3>
<table><tr>{% for h in run.model_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in run.model_rows %}<tr>{% for v in row %}<td><code>{{ v }}</code></td>{% endfor %}</tr>{% endfor %}
</table>
<h3>Config</h3>
<pre id="config-text">{{ run.config_text }}</pre>
</section>
</main>
<footer class="meta">Written by ontoscope {{ run.ontoscope_version }} from the run directory {{ run.root }}.</footer>
</body>
</html>
"""

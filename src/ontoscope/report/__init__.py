"""The HTML report of a finished study run: claims and verdicts, the latent and operational ontology of every
model side by side, ICV score against the knobs, operator plots, steering examples with audio, and what it
takes to reproduce the run (``docs/report.md``).

It reads the run's files only (``run.json``, ``tables/*.parquet``, each model's directories).
"""

from ontoscope.report.run import ModelEntry, RunData, load_run
from ontoscope.report.write import CLAIMS, write_report

__all__ = ["CLAIMS", "ModelEntry", "RunData", "load_run", "write_report"]

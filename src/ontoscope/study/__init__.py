"""Studies: a config in, cached and resumable stages, the final tables and the report out (``docs/studies.md``)."""

from ontoscope.study.config import StudyConfig, load_config, parse_config
from ontoscope.study.run import run_study, study_status

__all__ = ["StudyConfig", "load_config", "parse_config", "run_study", "study_status"]

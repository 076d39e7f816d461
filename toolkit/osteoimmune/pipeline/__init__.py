"""Config-driven end-to-end runs (``osteoimmune run CONFIG.yaml``, ``osteoimmune demo``).

:func:`run_pipeline` goes from a data set to ``report.html``, tables, figures and
``provenance.json``; :func:`load_config` / :func:`validate_config` check a configuration up
front; :data:`DEMO_CONFIG` is the configuration of the demo on the simulated cohort.
"""

from ._config import DEMO_CONFIG, REQUIRED_KEYS, ConfigError, load_config, validate_config
from ._run import OUTPUT_FILES, OutputExistsError, RunResult, run_pipeline

__all__ = [
    "DEMO_CONFIG",
    "OUTPUT_FILES",
    "REQUIRED_KEYS",
    "ConfigError",
    "OutputExistsError",
    "RunResult",
    "load_config",
    "run_pipeline",
    "validate_config",
]

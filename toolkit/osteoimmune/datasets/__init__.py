"""Public data sets (registry, checksum-verified fetching, readers) and a simulated cohort.

- :func:`load` a registered data set by name; :func:`list` the registry as a table;
  :func:`info` one entry.
- :func:`simulate_cohort`: a labelled simulation of immune cells across donors with a
  bone phenotype and a planted signature association; :func:`donor_table` its donors.
"""

from ._load import STANDARD_COLUMNS, harmonize, load
from ._readers import read_geo_annot, read_geo_series_matrix
from ._registry import (
    DatasetFileError,
    default_cache_dir,
    fetch_file,
    get_entry,
    list_datasets,
    read_registry,
    sha256sum,
)
from ._simulate import DEFAULT_CELL_TYPES, donor_table, simulate_cohort


def list(cache_dir=None, registry=None):  # the public name is oi.datasets.list
    """Table of the registered data sets (see :func:`list_datasets`).

    Parameters
    ----------
    cache_dir
        Cache folder used for the ``cached`` column; default ``$OSTEOIMMUNE_DATA_DIR`` or
        the platform cache.
    registry
        A registry from :func:`read_registry`; default the shipped one.

    Returns
    -------
    pandas.DataFrame
        One row per data set, indexed by name.
    """
    return list_datasets(registry=registry, cache_dir=cache_dir)


def info(name: str, registry=None) -> dict:
    """The registry entry of one data set (title, files, citation, licence, harmonisation).

    Parameters
    ----------
    name
        Registered name.
    registry
        A registry from :func:`read_registry`; default the shipped one.

    Returns
    -------
    dict
        A copy of the entry.
    """
    import copy

    return copy.deepcopy(get_entry(name, registry))


__all__ = [
    "DEFAULT_CELL_TYPES",
    "STANDARD_COLUMNS",
    "DatasetFileError",
    "default_cache_dir",
    "donor_table",
    "fetch_file",
    "get_entry",
    "harmonize",
    "info",
    "list",
    "list_datasets",
    "load",
    "read_geo_annot",
    "read_geo_series_matrix",
    "read_registry",
    "sha256sum",
    "simulate_cohort",
]

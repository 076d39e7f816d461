"""The data-set registry (``data/registry.yaml``), the cache folder and checksum-verified fetching."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .._paths import data_root
from .._utils import warn

ENV_DATA_DIR = "OSTEOIMMUNE_DATA_DIR"
_REQUIRED = ("title", "organism", "species", "data_type", "observation", "reader", "files",
             "citation", "licence", "verified")
_DATA_TYPES = ("single_cell", "microarray", "rnaseq", "sample_sheet")


class DatasetFileError(RuntimeError):
    """A registered file is missing from the cache, cannot be downloaded, or fails its checksum."""


def _validate(name: str, entry: dict) -> dict:
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ValueError(f"registry entry {name!r} lacks the field(s) {missing}; every entry "
                         f"needs {list(_REQUIRED)}.")
    if entry["data_type"] not in _DATA_TYPES:
        raise ValueError(f"registry entry {name!r}: data_type {entry['data_type']!r} is not one "
                         f"of {_DATA_TYPES}.")
    roles = [f.get("role") for f in entry["files"]]
    if len(set(roles)) != len(roles):
        raise ValueError(f"registry entry {name!r}: file roles must be unique, got {roles}.")
    for f in entry["files"]:
        for key in ("role", "path", "format"):
            if not f.get(key):
                raise ValueError(f"registry entry {name!r}: a file lacks {key!r}.")
        sha = f.get("sha256")
        if sha is not None and len(str(sha)) != 64:
            raise ValueError(f"registry entry {name!r}: sha256 of {f['path']} is not 64 hex "
                             "characters.")
        if sha is None and entry["verified"] is True and not f.get("optional"):
            raise ValueError(f"registry entry {name!r} is marked verified but {f['path']} has no "
                             "sha256; mark the entry verified: false.")
    entry = dict(entry)
    entry["name"] = name
    return entry


def read_registry(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read and validate a registry YAML file.

    Parameters
    ----------
    path
        Registry file; default: the shipped ``registry.yaml``.

    Returns
    -------
    dict
        Data-set name -> entry (a dict with the registry's fields plus ``name``).
    """
    if path is None:
        return dict(_shipped_registry())
    return _parse(Path(path))


def _parse(path: Path) -> dict[str, dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise FileNotFoundError(f"cannot read the registry {path}: {exc.strerror}; pass an "
                                "existing registry YAML, or registry=None for the shipped "
                                "one.") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML ({exc}); fix the syntax of the "
                         "registry file.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise ValueError(f"{path} is not a data-set registry: expected a mapping with a "
                         "'datasets' mapping of name -> entry.")
    return {name: _validate(name, entry) for name, entry in raw["datasets"].items()}


@cache
def _shipped_registry() -> dict[str, dict]:
    return _parse(data_root() / "registry.yaml")


def get_entry(name: str, registry: dict[str, dict] | None = None) -> dict:
    """Return the registry entry of ``name`` (raises a KeyError listing the known names)."""
    reg = registry if registry is not None else _shipped_registry()
    if name not in reg:
        raise KeyError(f"Unknown data set {name!r}. Registered: {sorted(reg)}. See "
                       "oi.datasets.list() or `osteoimmune datasets list`.")
    return reg[name]


def default_cache_dir() -> Path:
    """The cache folder: ``$OSTEOIMMUNE_DATA_DIR`` if set, else the platform user cache."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("osteoimmune")) / "datasets"


def _resolve_cache(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def sha256sum(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@cache
def _sha_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256sum(path)


def _file_sha(path: Path) -> str:
    st = path.stat()
    return _sha_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


def fetch_file(entry: dict, role: str, cache_dir=None, *, download: bool = True,
               progressbar: bool = True, allow_unverified: bool = False) -> Path | None:
    """Return the local path of one registered file, verified against its sha256.

    A file already in the cache (``cache_dir / path``) is used only if its sha256 matches the
    registry; a mismatch is an error (the file is left untouched). A missing file is
    downloaded with pooch (checksum verified, progress bar) when it has a URL and
    ``download`` is True. A missing optional file gives None.

    Parameters
    ----------
    entry
        Registry entry (from :func:`get_entry`).
    role
        The file's role in the entry (``"matrix"``, ``"sample_sheet"``, ...).
    cache_dir
        Cache folder; default :func:`default_cache_dir`.
    download
        Allow downloading missing files.
    progressbar
        Show pooch's progress bar while downloading.
    allow_unverified
        Download a file whose sha256 the registry does not record (``verified: false``
        entries). Off by default: osteoimmune downloads only what it can verify. When on,
        the sha256 of the downloaded file is reported in a warning so that it can be
        recorded.
    """
    spec = next((f for f in entry["files"] if f["role"] == role), None)
    if spec is None:
        raise KeyError(f"data set {entry['name']!r} has no file with role {role!r} (roles: "
                       f"{[f['role'] for f in entry['files']]}).")
    root = _resolve_cache(cache_dir)
    path = root / spec["path"]
    sha = spec.get("sha256")
    if path.exists():
        if sha is not None:
            got = _file_sha(path)
            if got != sha:
                raise DatasetFileError(
                    f"{path} (data set {entry['name']!r}) has sha256 {got}, but the registry "
                    f"records {sha}: the file is corrupted, truncated or a different version "
                    "and will not be used. Delete it and fetch again "
                    f"(`osteoimmune datasets fetch {entry['name']}`), or point "
                    f"{ENV_DATA_DIR} at a folder holding the right copy.")
        else:
            warn(f"{path} (data set {entry['name']!r}) has no checksum in the registry "
                 "(verified: false): it is used unverified.")
        return path
    if spec.get("optional"):
        return None
    url = spec.get("url")
    if url is None:
        raise DatasetFileError(
            f"{spec['path']} of data set {entry['name']!r} is not in the cache ({root}) and has "
            f"no public download URL ({spec.get('kind', 'derived file')}). Place the file at "
            f"{path} (see data/README.md for how it was made), or set {ENV_DATA_DIR} to the "
            "folder that holds it.")
    if not download:
        raise DatasetFileError(
            f"{spec['path']} of data set {entry['name']!r} is not in the cache ({root}) and "
            f"downloading is off. Fetch it with `osteoimmune datasets fetch {entry['name']}` "
            f"(from {url}) or set {ENV_DATA_DIR} to the folder that holds it.")
    import pooch

    known = f"sha256:{sha}" if sha is not None else None
    if known is None and not allow_unverified:
        raise DatasetFileError(
            f"data set {entry['name']!r} is not verified: the registry records no sha256 for "
            f"{url}, and osteoimmune downloads only files it can verify. Download it yourself "
            f"and place it at {path}, or pass allow_unverified=True (CLI: "
            "--allow-unverified) to download it and report its sha256.")
    try:
        got = pooch.retrieve(url, known_hash=known, fname=path.name, path=path.parent,
                             progressbar=progressbar)
    except ValueError as err:  # pooch raises ValueError on a hash mismatch
        raise DatasetFileError(f"download of {url} for data set {entry['name']!r} failed its "
                               f"checksum and was discarded: {err}") from err
    except Exception as err:
        raise DatasetFileError(f"could not download {url} for data set {entry['name']!r}: "
                               f"{err}. Check the network, or place the file at {path}.") from err
    if known is None:
        warn(f"data set {entry['name']!r} is not verified: {url} was downloaded without a "
             f"checksum to check against; its sha256 is {_file_sha(Path(got))} (record it in "
             "the registry to make the entry verified).")
    return Path(got)


def list_datasets(registry: dict[str, dict] | None = None, cache_dir=None) -> pd.DataFrame:
    """Table of the registered data sets.

    Parameters
    ----------
    registry
        A registry from :func:`read_registry`; default the shipped one.
    cache_dir
        Cache folder used for the ``cached`` column.

    Returns
    -------
    pandas.DataFrame
        One row per data set (index ``name``): title, species, data_type, assay, tissue,
        n_files, verified, cached (every required file present in the cache), accession,
        citation, licence.
    """
    reg = registry if registry is not None else _shipped_registry()
    root = _resolve_cache(cache_dir)
    rows: list[dict[str, Any]] = []
    for name, e in reg.items():
        required = [f for f in e["files"] if not f.get("optional")]
        rows.append({
            "name": name,
            "title": e["title"],
            "species": e["species"],
            "data_type": e["data_type"],
            "assay": e.get("assay", ""),
            "tissue": e.get("tissue", ""),
            "n_files": len(e["files"]),
            "verified": bool(e["verified"]),
            "cached": all((root / f["path"]).exists() for f in required),
            "accession": e["citation"].get("accession", ""),
            "citation": e["citation"].get("text", ""),
            "licence": e["licence"],
        })
    return pd.DataFrame(rows).set_index("name")

"""Safety: no code execution from untrusted input, checksum-verified downloads, no overwrite.

- The package source (parsed with ``ast``, so comments and docstrings do not count) never
  calls ``pickle``/``marshal``/``shelve`` loads, ``eval``/``exec``/``compile``,
  ``yaml.load`` without a safe loader, ``yaml.unsafe_load``, ``pd.read_pickle``,
  ``np.load(..., allow_pickle=True)``, ``os.system`` or ``subprocess`` with ``shell=True``.
- YAML (configs, registry, signature files) is read with a safe loader, and a YAML tag that
  would build a Python object is refused.
- Downloads go through ``pooch.retrieve`` with a ``known_hash`` whenever the registry records
  a sha256 (every verified entry does); a mismatching download is refused and never used.
- Output folders are never replaced unless ``--force``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import osteoimmune as oi
from osteoimmune.cli import main
from osteoimmune.datasets import DatasetFileError, fetch_file

PKG = Path(oi.__file__).resolve().parent
SOURCES = sorted(PKG.rglob("*.py"))

FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("cPickle", "load"), ("cPickle", "loads"),
    ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"), ("dill", "load"),
    ("dill", "loads"), ("joblib", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
    ("yaml", "unsafe_load_all"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
    ("os", "system"), ("os", "popen"),
}
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "_LOADER", "BaseLoader"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def _calls():
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield path, node


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PKG.parent)}:{node.lineno}"


def test_sources_are_found():
    assert len(SOURCES) > 40
    assert sum(1 for _ in _calls()) > 1000


def test_no_unsafe_deserialisation_or_code_execution():
    bad = []
    for path, node in _calls():
        name = _dotted(node.func)
        if len(name) == 1 and name[0] in FORBIDDEN_NAMES:
            bad.append(f"{_where(path, node)} {name[0]}()")
        if len(name) >= 2 and name[-2:] in FORBIDDEN_CALLS:
            bad.append(f"{_where(path, node)} {'.'.join(name)}()")
        if name[-1:] == ("load",) and name[-2:-1] in (("np",), ("numpy",)):
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant)
                                                     and kw.value.value is False):
                    bad.append(f"{_where(path, node)} np.load(allow_pickle=...)")
        if name and name[0] == "subprocess" or name[-1:] in (("Popen",), ("run",)):
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and kw.value.value is False):
                    bad.append(f"{_where(path, node)} subprocess shell=True")
    assert not bad, "unsafe calls in the package: " + "; ".join(bad)


def test_no_pickle_import():
    bad = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            bad += [f"{path.name}: import {n}" for n in names
                    if n.split(".")[0] in ("pickle", "cPickle", "marshal", "shelve", "dill")]
    assert not bad, bad


def test_yaml_is_always_loaded_safely():
    loads = []
    for path, node in _calls():
        name = _dotted(node.func)
        if name[:1] != ("yaml",) or len(name) != 2:
            continue
        if name[1] in ("load", "load_all"):
            loader = [kw.value for kw in node.keywords if kw.arg == "Loader"]
            if len(node.args) > 1:
                loader.append(node.args[1])
            ok = loader and _dotted(loader[0])[-1:][0] in SAFE_LOADERS
            assert ok, f"{_where(path, node)}: yaml.{name[1]} without a safe Loader"
            loads.append(name[1])
        elif name[1] in ("safe_load", "safe_load_all"):
            loads.append(name[1])
    assert loads, "no YAML loading found: the scan is broken"
    # the loader behind yaml.load(..., Loader=_LOADER) in the signature library is safe
    from osteoimmune.signatures import _library

    assert issubclass(_library._LOADER, yaml.SafeLoader) or \
        _library._LOADER.__name__ == "CSafeLoader"


PYTHON_TAG = "dataset:\n  source: !!python/object/apply:os.system ['echo pwned']\n"


def test_yaml_python_tags_are_refused(tmp_path):
    from osteoimmune.pipeline import ConfigError, load_config

    cfg = tmp_path / "evil.yaml"
    cfg.write_text(PYTHON_TAG)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(cfg)
    reg = tmp_path / "registry.yaml"
    reg.write_text("datasets:\n  x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        oi.datasets.read_registry(reg)
    sig = tmp_path / "sig.yaml"
    sig.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(yaml.YAMLError):
        oi.signatures.read_yaml(sig)
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- downloads
def test_every_download_call_passes_known_hash():
    sites = []
    for path, node in _calls():
        name = _dotted(node.func)
        if name[:1] == ("pooch",) and name[-1:] in (("retrieve",), ("create",)):
            kws = {kw.arg for kw in node.keywords}
            need = "known_hash" if name[-1] == "retrieve" else "registry"
            assert need in kws, f"{_where(path, node)}: pooch.{name[-1]} without {need}="
            sites.append(_where(path, node))
        if name[-1:] in (("urlretrieve",), ("urlopen",)) or name[:1] == ("requests",):
            pytest.fail(f"{_where(path, node)}: a download outside pooch ({'.'.join(name)})")
    assert sites, "no pooch download found: the scan is broken"


def test_verified_registry_entries_have_checksums_for_every_url(tmp_path):
    n = 0
    for name, entry in oi.datasets.read_registry().items():
        for f in entry["files"]:
            if not (f.get("url") and entry["verified"]):
                continue
            if f.get("optional"):  # optional files are never downloaded: missing -> None
                assert fetch_file(entry, f["role"], tmp_path, download=True) is None
                continue
            sha = f.get("sha256")
            assert sha and len(sha) == 64, f"{name}/{f['role']}: URL without sha256"
            n += 1
    assert n >= 3


def _entry(url: str, sha: str | None) -> dict:
    return {"name": "test_set", "verified": sha is not None,
            "files": [{"role": "matrix", "path": "test_set/data.txt", "format": "txt",
                       "url": url, "sha256": sha}]}


def test_fetch_passes_the_registry_sha256_to_pooch(tmp_path, monkeypatch):
    import pooch

    seen = {}

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        seen.update(url=url, known_hash=known_hash)
        raise ValueError("SHA256 hash of downloaded file does not match")

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    sha = "a" * 64
    with pytest.raises(DatasetFileError, match="failed its checksum and was discarded"):
        fetch_file(_entry("https://example.org/data.txt", sha), "matrix", tmp_path,
                   progressbar=False)
    assert seen["known_hash"] == f"sha256:{sha}"
    assert not (tmp_path / "test_set" / "data.txt").exists()


def test_unverified_download_needs_opt_in(tmp_path, monkeypatch):
    """Entries marked verified: false (no recorded checksum) are refused by default; with
    allow_unverified=True they download with a warning giving the file's sha256."""
    import hashlib

    import pooch

    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append(url)
        assert known_hash is None
        p = Path(path) / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
        return str(p)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(DatasetFileError, match="allow_unverified=True"):
        fetch_file(_entry("https://example.org/data.txt", None), "matrix", tmp_path,
                   progressbar=False)
    assert calls == []  # nothing was downloaded
    sha = hashlib.sha256(b"x").hexdigest()
    with pytest.warns(UserWarning, match=f"its sha256 is {sha}"):
        fetch_file(_entry("https://example.org/data.txt", None), "matrix", tmp_path,
                   progressbar=False, allow_unverified=True)


def test_local_download_is_verified_end_to_end(tmp_path):
    """A real pooch download (from a local HTTP server): a wrong sha256 is refused and the
    file is not kept; the right one is accepted."""
    import functools
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    payload = b"gene\tvalue\nTNF\t1\n"
    (served / "data.txt").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.txt"
        cache = tmp_path / "cache"
        with pytest.raises(DatasetFileError, match="checksum"):
            fetch_file(_entry(url, "0" * 64), "matrix", cache, progressbar=False)
        assert not (cache / "test_set" / "data.txt").exists()
        good = hashlib.sha256(payload).hexdigest()
        got = fetch_file(_entry(url, good), "matrix", cache, progressbar=False)
        assert Path(got).read_bytes() == payload
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- outputs
def test_run_refuses_existing_output_without_force(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"source": "simulated", "simulate": {"n_donors": 6, "cells_per_donor": 20}},
        "signatures": {"names": ["trained_immunity_bcg_shared"]},
        "scoring": {"methods": ["zmean"]}, "aggregation": {"min_cells": 2},
        "association": {"phenotypes": ["bmd"]},
        "figures": {"formats": ["png"], "embedding": "none", "max_scatter": 1},
        "progress": False}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "--force" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]
    assert (out / "precious.txt").read_text() == "keep me"
    res = CliRunner().invoke(main, ["demo", "--out", str(out), "--quiet", "--n-donors", "4",
                                    "--cells-per-donor", "10"])
    assert res.exit_code == 2 and (out / "precious.txt").read_text() == "keep me"
    # an existing *file* at --out is never replaced without --force either
    target = tmp_path / "file_out"
    target.write_text("a file")
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(target), "--quiet"])
    assert res.exit_code == 2
    assert target.read_text() == "a file"

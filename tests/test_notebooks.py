"""The notebooks in notebooks/ run from a clean clone and reach the conclusions they state.

Every notebook is executed with papermill (a notebook that raises fails here) on small inputs
(its ``small`` parameter), each in its own process, all in parallel. Each notebook writes a
JSON of its key numbers to the ``out_dir`` it is given; the tests below assert the
conclusions stated in the notebook's first cell on those numbers. A notebook whose real data
file is absent from ``OSTEOIMMUNE_DATA_DIR`` is skipped, naming the file.

The committed notebooks carry no outputs (they are executed here and by the docs build);
that, their tagged ``parameters`` cell, their data-source/citation/conclusion header and
their use of the public API only are checked without running them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA, require_file

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill", reason="papermill executes the notebooks (test extra)")
pytest.importorskip("ipykernel", reason="ipykernel runs the notebooks (test extra)")

NB_DIR = ROOT / "notebooks"
# name -> (parameters for the CI run, registered data sets it reads from the cache)
NOTEBOOKS: dict[str, tuple[dict, list[str]]] = {
    "01_quickstart": ({}, []),
    "02_signature_library": ({}, ["kang2018_muscat_example", "gse176265_rankl_timecourse"]),
    "03_trained_immunity": ({"small": True}, ["kang2018_muscat_example"]),
    "04_osteoclastogenesis": ({}, ["gse176265_rankl_timecourse"]),
    "05_bone_phenotype_association": ({"small": True}, []),
    "06_figures": ({"small": True}, []),
}
TIMEOUT_S = 600


def _missing_data(datasets: list[str]) -> list[Path]:
    import osteoimmune as oi

    missing = []
    for name in datasets:
        for f in oi.datasets.get_entry(name)["files"]:
            path = SHARED_DATA / f["path"]
            if not f.get("optional") and not path.exists():
                missing.append(path)
    return missing


def _execute(name: str, params: dict, workdir: Path) -> Path:
    """Run one notebook with papermill in a fresh process; return its output folder."""
    out = workdir / name
    out.mkdir(parents=True, exist_ok=True)
    params = {**params, "out_dir": str(out)}
    if name == "06_figures":
        params |= {"run_dir": str(out / "demo_run"), "fig_dir": str(out / "figures")}
    cmd = [sys.executable, "-m", "papermill", str(NB_DIR / f"{name}.ipynb"),
           str(out / f"{name}.executed.ipynb"), "-y", json.dumps(params), "-k", "python3",
           "--cwd", str(out), "--no-progress-bar", "--execution-timeout", str(TIMEOUT_S)]
    env = {**os.environ, "OSTEOIMMUNE_DATA_DIR": str(SHARED_DATA), "MPLBACKEND": "Agg",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S + 60,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"notebook {name} failed (papermill exit {proc.returncode}):\n"
                           f"{proc.stderr[-6000:]}")
    return out


class _Runs:
    """Starts every notebook whose data are present, in parallel, on first use."""

    def __init__(self, workdir: Path, wanted: set[str]):
        self.workdir = workdir
        self.skipped: dict[str, list[Path]] = {}
        runnable = {}
        for name, (params, datasets) in NOTEBOOKS.items():
            if name not in wanted:
                continue
            missing = _missing_data(datasets)
            if missing:
                self.skipped[name] = missing
            else:
                runnable[name] = params
        # all at once: a run spends much of its time waiting on its kernel (start-up,
        # imports), so on CI's 2 cores six in parallel take ~65 s, three at a time ~90 s
        # (each kernel stays under 1 GiB)
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(runnable)))
        self.futures: dict[str, Future] = {
            name: self.pool.submit(_execute, name, params, workdir)
            for name, params in runnable.items()}

    def folder(self, name: str) -> Path:
        if name in self.skipped:
            require_file(self.skipped[name][0])
        return self.futures[name].result(timeout=3 * TIMEOUT_S)

    def numbers(self, name: str) -> dict:
        path = self.folder(name) / f"{name}.json"
        assert path.exists(), f"{name} ran but did not write its key numbers to {path}"
        return json.loads(path.read_text())


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    # run only the notebooks that the selected tests (-k, node ids) need
    here = [item.name for item in request.session.items if item.path == Path(__file__)]
    wanted = {n for n in NOTEBOOKS
              if any(f"[{n}]" in t or t.startswith(f"test_{n[:2]}_") for t in here)}
    r = _Runs(tmp_path_factory.mktemp("notebooks"), wanted)
    yield r
    r.pool.shutdown(wait=True, cancel_futures=True)


def _read(name: str):
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


# ----------------------------------------------------------------------- static checks
def test_every_notebook_is_tested():
    found = sorted(p.stem for p in NB_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS), f"notebooks/ holds {found}; tests cover {sorted(NOTEBOOKS)}"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_clean_with_parameters_and_header(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{name}: code cells {dirty} carry outputs; commit notebooks without them"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: needs exactly one code cell tagged 'parameters'"
    assert "out_dir" in tagged[0].source
    assert nb.metadata["kernelspec"]["name"] == "python3"
    header = nb.cells[0]
    assert header.cell_type == "markdown" and header.source.startswith("# ")
    for needed in ("**Data", "What you should conclude"):
        assert needed in header.source, f"{name}: the first cell must state {needed!r}"
    assert re.search(r"doi:10\.\d+/|GEO GSE\d+", header.source), \
        f"{name}: the first cell must cite its data (a DOI or a GEO accession)"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_public_api_only(name):
    private = re.compile(r"(osteoimmune|\boi)(\.\w+)*\._\w+|from\s+osteoimmune(\.\w+)*\s+import\s+_")
    for cell in _read(name).cells:
        if cell.cell_type == "code":
            hit = private.search(cell.source)
            assert hit is None, f"{name} uses a private name: {hit.group(0)!r}"


def test_quickstart_is_ten_cells():
    assert len(_read("01_quickstart").cells) <= 10


@pytest.mark.parametrize("name", ["05_bone_phenotype_association", "06_figures"])
def test_simulated_data_labelled(name):
    nb = _read(name)
    assert "SIMULATED DATA" in nb.cells[0].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count("SIMULATED") >= 2, f"{name}: label the simulated cohort in figure titles"


# ----------------------------------------------------------------------- execution
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_executes(runs, name):
    folder = runs.folder(name)
    executed = nbformat.read(folder / f"{name}.executed.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert (folder / f"{name}.json").exists()


@pytest.mark.slow
def test_01_monocyte_markers_peak_in_monocytes(runs):
    k = runs.numbers("01_quickstart")
    assert k["n_signatures_library"] == 48
    assert k["peak"]["marker_classical_monocyte"] == "CD14+ Monocyte"
    assert k["peak"]["marker_cdc"] == "Dendritic"
    mono = k["mean_by_type"]["marker_classical_monocyte"]
    lymphoid = [v for t, v in mono.items() if t not in ("CD14+ Monocyte", "Dendritic")]
    assert mono["CD14+ Monocyte"] > max(lymphoid) + 1.0
    assert 0 < k["coverage"]["marker_osteoclast"] < 0.5   # the caveat the notebook states


@pytest.mark.slow
def test_02_library_coverage_orthologs_gmt(runs):
    k = runs.numbers("02_signature_library")
    assert k["n_signatures"] == 48
    assert set(k["per_theme"]) == {"trained_immunity", "osteoclastogenesis", "inflammation",
                                   "interferon", "myeloid_identity"}
    assert all(v >= 2 for v in k["per_theme"].values())
    assert k["kang_osteoclast_resorption_genes_found"] == ["ACP5", "SNX10", "TCIRG1"]
    assert k["kang_osteoclast_fusion_scored"] is False
    assert k["rankl_osteoclast_resorption_found"] == 9
    assert k["mouse_orthologs"]["ACP5"] == ["Acp5"] and k["mouse_orthologs"]["CTSK"] == ["Ctsk"]
    assert k["mouse_data_species"] == ["mouse"] and k["mouse_converted_from"] == ["human"]
    assert k["gmt_equals_dict"] is True
    assert len(k["isg_stim_minus_ctrl"]) == 2
    assert all(v > 0.5 for v in k["isg_stim_minus_ctrl"].values())


@pytest.mark.slow
def test_03_methods_agree_on_unsigned_disagree_on_signed(runs):
    k = runs.numbers("03_trained_immunity")
    assert k["myeloid_types"] == ["classical monocyte", "non-classical monocyte"]
    for name in ("HALLMARK_INTERFERON_ALPHA_RESPONSE", "trained_immunity_bcg_shared"):
        assert k["signed"][name] is False
        assert k["min_rho"][name] >= 0.8, (name, k["min_rho"][name])
    assert k["signed"]["trained_immunity_bcg_tm2"] is True
    rho = k["rho_tm2_vs_zmean"]
    assert rho["module"] < -0.5 and rho["aucell"] < -0.5       # direction ignored
    assert rho["ucell"] > 0 and rho["scdrs"] > 0               # direction used
    # IFN-beta raises the BCG-shared and the interferon scores in both monocyte types of
    # both donors, with every method
    for key, by_method in k["stim_minus_ctrl"].items():
        sig = key.split("|")[0]
        if sig in ("trained_immunity_bcg_shared", "HALLMARK_INTERFERON_ALPHA_RESPONSE"):
            assert all(v > 0 for v in by_method.values()), (key, by_method)
    n_rows = sum(key.startswith("trained_immunity_bcg_shared|") for key in k["stim_minus_ctrl"])
    assert n_rows == 4   # 2 monocyte types x 2 donors
    assert len(k["bcg_shared_ifn_overlap"]) >= 10


@pytest.mark.slow
def test_04_stage_programmes_ordered_along_rankl_time(runs):
    k = runs.numbers("04_osteoclastogenesis")
    assert k["species"] == ["mouse"] and k["n_samples"] == 24
    for peaks in (k["peak_zmean"], k["peak_module"]):
        assert peaks["osteoclast_precursor_commitment"] == 24
        assert peaks["osteoclast_nfatc1_program"] == 48
        assert peaks["osteoclast_resorption"] == 48
    res = k["mean_by_time"]["osteoclast_resorption"]
    assert res["48"] > res["24"] > res["0"] and res["72"] > res["24"]
    for name in ("osteoclast_resorption", "osteoclast_nfatc1_program"):
        assert k["spearman_time"][name]["rho"] > 0.6
        assert k["spearman_time"][name]["qvalue"] < 0.05
    assert k["spearman_time"]["osteoclast_precursor_commitment"]["qvalue"] > 0.05


@pytest.mark.slow
def test_05_planted_effect_recovered_and_null_calibrated(runs):
    k = runs.numbers("05_bone_phenotype_association")
    assert k["simulated"] is True
    truth = k["truth"]
    assert truth["direction"] == "negative"
    for top in (k["top_a"], k["top_b"], k["top_meta"]):
        assert (top["signature"], top["group"]) == (truth["signature"], truth["cell_type"])
        assert top["effect"] < 0 and top["qvalue"] < 0.05
    assert k["permutation_pvalue"] <= 0.01
    assert k["n_null_tests"] >= 500
    assert 0.02 <= k["null_fpr"] <= 0.09, k["null_fpr"]
    assert k["null_planted_ks_pvalue"] > 0.01


@pytest.mark.slow
def test_06_figures_regenerated_from_pipeline_outputs(runs):
    k = runs.numbers("06_figures")
    assert k["simulated"] is True
    assert k["outputs_match_provenance"] is True and k["n_outputs_checked"] >= 7
    assert k["n_tests_compared"] > 20
    assert k["max_effect_diff_recomputed"] < 1e-9
    assert (k["top_hit"]["signature"], k["top_hit"]["group"]) == \
        (k["truth"]["signature"], k["truth"]["cell_type"])
    assert k["top_hit"]["effect"] < 0
    figures = runs.folder("06_figures") / "figures"
    for name, size in k["figures"].items():
        png = figures / name
        assert png.exists() and png.stat().st_size == size and size > 20_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

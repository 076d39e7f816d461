"""The documentation site and the run report, built and opened as a user would.

1. The docs build with ``sphinx-build -W --keep-going`` (warnings are errors) into a
   temporary folder, once per module (fixture ``built_docs``).
2. Static checks of the built site: expected pages, every public name of ``oi.signatures``,
   ``oi.pp``, ``oi.tl``, ``oi.pl`` and ``oi.datasets`` has an API page, the generated
   signature / data-set / CLI pages match the package, every internal link and anchor of
   every page resolves, and the code of the Quickstart runs and shows what its text says.
3. Unit checks of the page generator (``docs/_ext/oi_docgen.py``) on inputs made here.
4. Headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``, no background
   networking, every non-file request refused) opens the index, a tutorial, the API page of
   ``oi.tl.score`` and the ``report.html`` of ``osteoimmune demo``: no console errors, no
   request leaves the machine, every image loaded (naturalWidth > 0), every internal link
   resolves, the report shows its tables and figures. Screenshots go to the test's temporary
   folder (``sizes.json`` lists them).

Skips, with the reason: the ``docs`` extra is not installed (sphinx, furo, myst-nb,
sphinx-click, sphinx-copybutton, sphinx-mathjax-offline); Playwright's Python package or a
Chromium binary is missing (``.ci/run`` installs Chromium with apt).
"""

from __future__ import annotations

import html.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import osteoimmune as oi

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NAMESPACES = ("signatures", "pp", "tl", "pl", "datasets")
DOCS_PACKAGES = {"sphinx": "sphinx", "furo": "furo", "myst_nb": "myst-nb",
                 "sphinx_click": "sphinx-click", "sphinx_copybutton": "sphinx-copybutton",
                 "sphinx-mathjax-offline": "sphinx-mathjax-offline"}
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser",
                       "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-default-apps", "--disable-extensions"]

FIRST_TUTORIAL_GLOB = "01_*"
VIEWPORT = {"width": 1280, "height": 900}

pytestmark = pytest.mark.slow


def _require_docs_extra() -> None:
    missing = [pip for mod, pip in DOCS_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        pytest.skip("documentation dependencies not installed: " + ", ".join(missing)
                    + " (install the docs extra: pip install -e '.[docs]')")


def _load_docgen():
    """docs/_ext/oi_docgen.py as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("oi_docgen", DOCS / "_ext" / "oi_docgen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- HTML parsing


class _PageParser(html.parser.HTMLParser):
    """Collect ids/names (anchors), link targets and resource URLs of one HTML page."""

    RESOURCE_ATTRS = {("img", "src"), ("script", "src"), ("link", "href"), ("source", "src"),
                      ("iframe", "src"), ("video", "src"), ("audio", "src")}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[str] = []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        for key in ("id", "name"):
            if d.get(key):
                self.ids.add(d[key])
        if tag == "a" and d.get("href"):
            self.links.append(d["href"])
        for t, attr in self.RESOURCE_ATTRS:
            if tag == t and d.get(attr):
                self.resources.append(d[attr])


_parsed: dict[Path, _PageParser] = {}


def _parse(path: Path) -> _PageParser:
    path = path.resolve()
    if path not in _parsed:
        p = _PageParser()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        _parsed[path] = p
    return _parsed[path]


def _is_external(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return url.startswith("//") or scheme not in ("", "file")


def _check_target(page: Path, url: str) -> str | None:
    """None when ``url`` (relative to ``page`` or file://) resolves, else what is wrong."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "javascript", "mailto") or _is_external(url):
        return None
    if parts.scheme == "file":
        target = Path(unquote(parts.path))
    elif parts.path:
        target = (page.parent / unquote(parts.path)).resolve()
    else:
        target = page.resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"{url}: {target} does not exist"
    frag = unquote(parts.fragment)
    if frag and target.suffix == ".html" and frag not in _parse(target).ids:
        return f"{url}: no element with id {frag!r} in {target.name}"
    return None


# --------------------------------------------------------------------------- the build


@dataclass
class BuiltDocs:
    html: Path
    seconds: float
    stderr: str


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> BuiltDocs:
    _require_docs_extra()
    out = tmp_path_factory.mktemp("docs_build")
    html_dir, doctrees = out / "html", out / "doctrees"
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("OSTEOIMMUNE_DOCS_INTERSPHINX", None)  # no network: never fetch inventories
    # execute (when committed without outputs) only the tutorial the browser opens: the
    # notebooks are executed by their own tests, and CI time is short
    env.setdefault("OSTEOIMMUNE_DOCS_EXECUTE_ONLY", FIRST_TUTORIAL_GLOB)
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
           "-j", "auto", "-d", str(doctrees), str(DOCS), str(html_dir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    seconds = time.perf_counter() - t0
    (out / "build.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (
        f"sphinx-build -W failed (exit {proc.returncode}) after {seconds:.0f} s:\n"
        f"{proc.stderr[-6000:]}")
    return BuiltDocs(html_dir, seconds, proc.stderr)


def test_build_has_no_warnings(built_docs):
    # -W already turns warnings into a failed build; -q prints only warnings and errors
    sphinx_msgs = re.findall(r"^(?:.*?: )?(?:WARNING|ERROR|CRITICAL): .*$", built_docs.stderr,
                             flags=re.M)
    assert not sphinx_msgs, sphinx_msgs[:20]
    # the page generator keeps its expected Python warnings (ortholog losses, low coverage)
    # to itself: they are what the coverage tables report
    assert "oi_docgen.py" not in built_docs.stderr, built_docs.stderr[-3000:]
    print(f"docs built in {built_docs.seconds:.1f} s")


def test_expected_pages(built_docs):
    html_dir = built_docs.html
    for page in ("index", "installation", "quickstart", "tutorials", "api/index", "cli",
                 "signatures", "datasets", "performance", "changelog", "genindex", "search"):
        assert (html_dir / f"{page}.html").exists(), f"{page}.html missing"
    index = (html_dir / "index.html").read_text()
    for label in ("Installation", "Quickstart", "Tutorials", "API reference",
                  "Command line", "Signature library", "Data sets", "Performance",
                  "Changelog"):
        assert label in index, f"index navigation lacks {label!r}"
    # pages other tools generate are in the site exactly when their source exists
    for page in ("validation", "errors"):
        present = (DOCS / f"{page}.md").exists()
        assert (html_dir / f"{page}.html").exists() == present, page
        assert (f'href="{page}.html"' in index) == present, page
    # notebooks: one page per notebook
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (html_dir / "generated" / "tutorials" / f"{nb.stem}.html").exists(), nb.name


def test_every_public_name_has_an_api_page(built_docs):
    import inspect

    functions = built_docs.html / "generated" / "api" / "functions"
    missing = []
    for ns in NAMESPACES:
        mod = getattr(oi, ns)
        ns_page = (built_docs.html / "generated" / "api" / f"{ns}.html").read_text()
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj):
                page = functions / f"osteoimmune.{ns}.{name}.html"
                if not page.exists():
                    missing.append(f"oi.{ns}.{name}")
                    continue
                text = page.read_text()
                first_line = (inspect.getdoc(obj) or "").split("\n")[0].split("`")[0][:30]
                assert first_line and first_line.split()[0] in text, (ns, name)
            else:
                assert f"oi.{ns}.{name}" in ns_page, f"constant oi.{ns}.{name} not listed"
    assert not missing, f"public names without an API page: {missing}"
    score = (functions / "osteoimmune.tl.score.html").read_text()
    for text in ("Parameters", "Returns", "random_state", "method"):
        assert text in score


def test_signature_pages_match_the_library(built_docs):
    lib = oi.signatures.load()
    folder = built_docs.html / "generated" / "signatures"
    pages = sorted(p.stem for p in folder.glob("*.html"))
    assert pages == sorted(lib.names)
    overview = (built_docs.html / "signatures.html").read_text()
    assert f"Library version <strong>{lib.version}</strong>" in overview
    for sig in lib.values():
        text = (folder / f"{sig.name}.html").read_text()
        genes_table = text.split('id="genes"')[1].split('id="coverage-on-the-shipped-data"')[0]
        for gene in sig.genes:
            assert f"<td><p>{gene}</p></td>" in genes_table, (sig.name, gene)
        assert f"<td><p>{sig.species}</p></td>" in text
        licence = (sig.source or {}).get("licence")
        if licence:
            assert " ".join(str(licence).split())[:20] in text.replace("&amp;", "&"), sig.name
        assert f'href="../../generated/signatures/{sig.name}.html"' in overview or \
            f'href="generated/signatures/{sig.name}.html"' in overview
    # weights are shown, with their sign
    prog = (folder / "PROGENY_NFKB.html").read_text()
    w = lib["PROGENY_NFKB"].weights[0]
    assert f"{float(w):+.4g}" in prog


def test_signature_coverage_matches_scoring(built_docs, pbmc68k):
    """The coverage column of a set page equals what oi.tl.score reports on the same data."""
    lib = oi.signatures.load()
    names = ["marker_classical_monocyte", "marker_cdc", "HALLMARK_TNFA_SIGNALING_VIA_NFKB"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = oi.tl.score(pbmc68k, lib.select(names=names), method="zmean", use_raw=True,
                             progress=False)
    cov = oi.tl.coverage(scores)
    for name in names:
        text = (built_docs.html / "generated" / "signatures" / f"{name}.html").read_text()
        row = text.split("scanpy pbmc68k_reduced")[1].split("</tr>")[0]
        found, requested = int(cov.loc[name, "n_found"]), int(cov.loc[name, "n_requested"])
        assert f"{found} / {requested}" in row, (name, row)


def test_datasets_page_matches_the_registry(built_docs):
    text = (built_docs.html / "datasets.html").read_text()
    table = oi.datasets.list()
    for name in table.index:
        assert f'id="dataset-{name.replace("_", "-")}"' in text, name
        for f in oi.datasets.info(name).get("files") or []:
            if f.get("sha256"):
                assert f["sha256"][:12] in text, (name, f["path"])


def test_cli_page_documents_every_command(built_docs):
    from osteoimmune.cli import main

    text = (built_docs.html / "cli.html").read_text()
    for name, cmd in main.commands.items():
        assert f'<section id="osteoimmune-{name}">' in text, name
        for sub, subcmd in getattr(cmd, "commands", {}).items():
            assert f'<section id="osteoimmune-{name}-{sub}">' in text, (name, sub)
            for param in subcmd.params:  # every option is documented
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--"):
                        assert f'<span class="pre">{opt}</span>' in text, (name, sub, opt)
    # click's \b paragraphs (the config template) are verbatim blocks, not reflowed text
    pre = [re.sub(r"<[^>]+>", "", p) for p in re.findall(r"<pre>(.*?)</pre>", text, flags=re.S)]
    assert any("source*:" in p and "association*:" in p for p in pre)


def test_every_internal_link_of_the_site_resolves(built_docs):
    broken, n_links, n_pages = [], 0, 0
    for page in sorted(built_docs.html.rglob("*.html")):
        n_pages += 1
        parsed = _parse(page)
        for url in parsed.links + parsed.resources:
            n_links += 1
            problem = _check_target(page, url)
            if problem:
                broken.append(f"{page.relative_to(built_docs.html)}: {problem}")
    assert n_pages > 100 and n_links > 1000
    assert not broken, f"{len(broken)} broken links, e.g.:\n" + "\n".join(broken[:20])


def test_no_page_loads_a_resource_from_the_web(built_docs):
    remote = set()
    for page in built_docs.html.rglob("*.html"):
        remote |= {u for u in _parse(page).resources if _is_external(u)}
    assert not remote, f"pages load remote resources (offline readers see errors): {remote}"


def test_quickstart_code_runs_and_shows_what_the_text_says():
    import matplotlib

    matplotlib.use("Agg")
    src = (DOCS / "quickstart.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", src, flags=re.S)
    assert len(blocks) >= 3
    ns: dict = {}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(blocks):
            exec(compile(block, f"quickstart.md block {i}", "exec"), ns)
    peaks = ns["mean_by_type"].idxmax()
    assert peaks["marker_classical_monocyte"] == "CD14+ Monocyte"
    assert peaks["marker_cdc"] == "Dendritic"
    assert "marker_neutrophil" not in ns["scores"].columns  # left out: no gene in the data
    top = ns["top"].iloc[0]
    truth = ns["truth"]
    assert (top["signature"], top["group"]) == (truth["signature"], truth["cell_type"])
    assert top["effect"] < 0 and top["qvalue"] < 0.05


# --------------------------------------------------------------------------- generator units


def test_performance_page_renders_benchmark_json(tmp_path):
    gen = _load_docgen()
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "score.json").write_text(json.dumps({
        "benchmark": "score", "date": "2026-01-02 03:04:05",
        "data": {"n_cells": 100000, "n_genes": 20000},
        "machine": {"cpus": 2},
        "results": {"osteoimmune:module": {"seconds": 1.2345, "peak_rss_mib": 812.4},
                    "scanpy:score_genes": {"seconds": 31.0, "peak_rss_mib": 2048.0}},
        "ratios": {"module_speedup_vs_scanpy": 25.11},
    }))
    w = gen._Writer(tmp_path / "generated")
    gen.generate_performance(w, repo)
    text = (tmp_path / "generated" / "_performance.inc").read_text()
    assert "## Score benchmark (`score.json`)" in text
    assert "| osteoimmune:module | 1.23 | 812 |" in text
    assert "| scanpy:score\\_genes | 31.00 | 2,048 |" in text
    assert "| n\\_cells | 100,000 |" in text
    assert "25.11" in text
    # no results: a note that says how to produce them
    empty = tmp_path / "empty"
    (empty / "benchmarks" / "results").mkdir(parents=True)
    gen.generate_performance(gen._Writer(tmp_path / "g2"), empty)
    assert "python benchmarks/score_bench.py" in (tmp_path / "g2" / "_performance.inc").read_text()


def test_generator_rewrites_only_changed_files_and_prunes_stale_ones(tmp_path):
    gen = _load_docgen()
    w = gen._Writer(tmp_path)
    p = w.write("signatures/a.md", "x")
    stale = tmp_path / "signatures" / "gone.md"
    stale.write_text("old")
    mtime = p.stat().st_mtime_ns
    time.sleep(0.01)
    w.write("signatures/a.md", "x")
    assert p.stat().st_mtime_ns == mtime  # unchanged content: untouched (incremental builds)
    w.prune(["signatures"], (".md",))
    assert p.exists() and not stale.exists()


def test_optional_pages_leave_the_toctree_only_when_absent(tmp_path):
    gen = _load_docgen()

    class App:
        srcdir = str(tmp_path)

        class config:
            oi_optional_pages = ["validation", "errors"]

    (tmp_path / "validation.md").write_text("# Validation\n")
    src = ["```{toctree}\n:maxdepth: 1\n\nvalidation\nperformance\nerrors\nchangelog\n```\n"]
    gen._drop_missing_optional_pages(App, "index", src)
    assert src[0] == "```{toctree}\n:maxdepth: 1\n\nvalidation\nperformance\nchangelog\n```\n"


def test_click_paragraphs_become_literal_blocks():
    gen = _load_docgen()
    lines = ["Intro text.", "", "| Configuration:", "|   source*: simulated", "", "After."]
    gen._click_literal_blocks(None, None, lines)
    assert lines == ["Intro text.", "", "::", "", "    Configuration:",
                     "      source*: simulated", "", "", "After."]


# --------------------------------------------------------------------------- browser


def _chromium() -> str:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright's Python package is not installed (pip install playwright; "
                    "the browser itself comes from the system: apt-get install chromium)")
    exe = os.environ.get("OSTEOIMMUNE_CHROMIUM") or next(
        (c for c in CHROMIUM_CANDIDATES if Path(c).exists()), None) or shutil.which("chromium")
    if not exe:
        pytest.skip("no Chromium binary found (looked for OSTEOIMMUNE_CHROMIUM, "
                    f"{', '.join(CHROMIUM_CANDIDATES)}); install it with apt-get install "
                    "chromium (.ci/run does)")
    return exe


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    sizes: dict[str, dict] = {}
    yield folder, sizes
    (folder / "sizes.json").write_text(json.dumps(sizes, indent=2))
    print(f"screenshots in {folder}: {json.dumps(sizes)}")


@dataclass
class Visit:
    console_errors: list[str]
    remote_requests: list[str]
    images: list[dict]
    links: list[str]
    page: object
    scroll_width: int


def _visit(browser, path: Path, shots, name: str) -> Visit:
    """Open ``path`` in a fresh page, wait for it to settle, screenshot it."""
    folder, sizes = shots
    context = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    remote: list[str] = []

    def route(r):
        if urlsplit(r.request.url).scheme in ("file", "data", "blob"):
            r.continue_()
        else:  # nothing may leave the machine
            remote.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"failed request {r.url}: {r.failure}")
            if urlsplit(r.url).scheme == "file" else None)
    page.goto(path.resolve().as_uri(), wait_until="load")
    # bring every image into view (lazy loading), then wait for all of them
    page.evaluate("""async () => {
        for (const img of document.images) { img.loading = 'eager'; img.scrollIntoView(); }
        window.scrollTo(0, 0);
    }""")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)",
                           timeout=20_000)
    page.wait_for_load_state("networkidle")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: (e.currentSrc || e.src).slice(0, 120), "
        "w: e.naturalWidth, h: e.naturalHeight}))")
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    dims = page.evaluate("() => [document.documentElement.scrollWidth, "
                         "document.documentElement.scrollHeight]")
    with shot.open("rb") as fh:  # PNG header: width and height of the screenshot
        head = fh.read(24)
    sizes[name] = {"file": shot.name, "bytes": shot.stat().st_size,
                   "png_px": [int.from_bytes(head[16:20], "big"),
                              int.from_bytes(head[20:24], "big")]}
    return Visit(errors, remote, images, links, page, dims[0])


def _assert_healthy(v: Visit, path: Path, min_images: int = 0) -> None:
    assert not v.console_errors, f"{path.name}: console errors: {v.console_errors}"
    assert not v.remote_requests, f"{path.name}: requests left the machine: {v.remote_requests}"
    broken_imgs = [i for i in v.images if i["w"] <= 0]
    assert not broken_imgs, f"{path.name}: images not loaded: {broken_imgs}"
    assert len(v.images) >= min_images, f"{path.name}: {len(v.images)} images"
    broken = [p for p in (_check_target(path, u) for u in v.links) if p]
    assert not broken, f"{path.name}: broken links: {broken[:10]}"


def test_browser_docs_pages(built_docs, browser, shots):
    pages = {"index": built_docs.html / "index.html",
             "api_tl_score": built_docs.html / "generated/api/functions/osteoimmune.tl.score.html"}
    tutorials = sorted((built_docs.html / "generated" / "tutorials").glob("*.html"))
    if tutorials:
        pages["tutorial"] = tutorials[0]
    visits = {}
    for name, path in pages.items():
        v = _visit(browser, path, shots, name)
        _assert_healthy(v, path)
        # wide tables and notebook outputs scroll in their own box, the page does not
        assert v.scroll_width <= VIEWPORT["width"], f"{name}: page is {v.scroll_width} px wide"
        visits[name] = v
    idx = visits["index"].page
    assert "osteoimmune" in idx.title()
    assert idx.locator(".sidebar-tree").get_by_role(
        "link", name="Signature library", exact=True).count() == 1
    api = visits["api_tl_score"].page
    sig = api.locator("dl.py.function > dt").first.inner_text()
    assert "score(" in sig and "random_state" in sig
    assert api.locator("dl.field-list >> text=Parameters").count() >= 1
    if list((ROOT / "notebooks").glob("*.ipynb")):
        assert "tutorial" in visits, "notebooks/ has notebooks but no tutorial page was built"
    if "tutorial" in visits:
        tut = visits["tutorial"]
        n_cells = tut.page.locator("div.cell").count()
        assert n_cells > 0
        n_outputs = tut.page.locator("div.cell_output").count()
        nb = json.loads((ROOT / "notebooks" / f"{tutorials[0].stem}.ipynb").read_text())
        executed = os.environ.get("OSTEOIMMUNE_DOCS_EXECUTE", "auto") != "off" or any(
            c.get("outputs") for c in nb["cells"])
        if executed:
            assert n_outputs > 0, "tutorial rendered without any output"
            plots = sum("oi.pl." in "".join(c.get("source", [])) for c in nb["cells"]
                        if c.get("cell_type") == "code")
            if plots:  # figures of the notebook are in the page, and they loaded
                assert len(tut.images) >= plots, (len(tut.images), plots)


def _run_demo(out: Path) -> Path:
    cmd = [sys.executable, "-m", "osteoimmune.cli", "demo", "--out", str(out), "--quiet",
           "--n-donors", "12", "--cells-per-donor", "80"]
    exe = shutil.which("osteoimmune")
    if exe:
        cmd = [exe, *cmd[3:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    if proc.returncode != 0 and "not implemented" in (proc.stderr + proc.stdout).lower():
        pytest.skip(f"`osteoimmune demo` is not implemented yet: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, f"osteoimmune demo failed: {proc.stderr[-3000:]}"
    report = out / "report.html"
    assert report.exists(), f"osteoimmune demo wrote no report.html in {out}"
    return report


def test_browser_demo_report(browser, shots, tmp_path):
    report = _run_demo(tmp_path / "demo")
    figures = sorted((tmp_path / "demo" / "figures").glob("*.png"))
    v = _visit(browser, report, shots, "demo_report")
    _assert_healthy(v, report, min_images=max(1, len(figures)))
    page = v.page
    # the figures are embedded and shown at a readable size
    shown = page.eval_on_selector_all(
        "img", "els => els.map(e => e.getBoundingClientRect().width)")
    assert all(w >= 200 for w in shown), shown
    # the tables are there and filled
    tables = page.locator("table")
    assert tables.count() >= 2
    rows = page.eval_on_selector_all("table", "ts => ts.map(t => t.querySelectorAll('tbody tr, "
                                     "tr').length)")
    assert all(r >= 2 for r in rows), rows
    body = page.inner_text("body")
    assert "SIMULATED" in body.upper()
    truth_sig = json.loads((tmp_path / "demo" / "provenance.json").read_text())
    assert truth_sig  # provenance written next to the report
    assert page.locator("h1").count() == 1


def test_link_checker_catches_broken_targets(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#here">b</a>'
                                     '<a href="b.html#gone">b</a><a href="c.html">c</a>'
                                     '<a href="#top">top</a><a href="https://x.org/">x</a>')
    (tmp_path / "b.html").write_text('<p id="here">B</p>')
    page = tmp_path / "a.html"
    problems = [_check_target(page, u) for u in _parse(page).links]
    assert problems[0] is None and problems[3] is None and problems[4] is None
    assert "no element with id 'gone'" in problems[1]
    assert "does not exist" in problems[2]


def test_browser_checks_catch_a_broken_page(browser, shots, tmp_path):
    """The browser checks are not vacuous: each defect of a bad page is reported."""
    from PIL import Image

    Image.new("RGB", (4, 3), "red").save(tmp_path / "ok.png")
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><h1>bad</h1><img src='ok.png'><img src='missing.png'>"
                   "<img src='https://example.org/remote.png'>"
                   "<a href='nowhere.html'>x</a><script>console.error('boom')</script>"
                   "</body></html>")
    v = _visit(browser, bad, shots, "selftest_bad_page")
    assert any("boom" in e for e in v.console_errors)
    assert any("missing.png" in e for e in v.console_errors)
    assert v.remote_requests == ["https://example.org/remote.png"]
    widths = sorted(i["w"] for i in v.images)
    assert widths == [0, 0, 4]
    assert [p for p in (_check_target(bad, u) for u in v.links) if p]
    with pytest.raises(AssertionError):
        _assert_healthy(v, bad)

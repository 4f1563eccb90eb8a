"""The course website: Sphinx + MyST-NB builds it from the committed notebooks and docs with every warning an error
(a broken internal link, a missing image), and a real headless Chromium opens each notebook page and finds its
headings, its figures loaded and its equations typeset by the MathJax the build serves (never raw ``\(`` or ``$$``,
and never MathJax from the network: the site is read offline in classrooms)."""
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-c", "site",
                          "-d", str(out / ".doctrees"), ".", str(out / "html")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return out / "html"


def test_every_notebook_and_docs_page_is_built(site):
    for name in NOTEBOOKS:
        page = (site / "notebooks" / f"{name}.html").read_text()
        assert "Run it yourself" in page and f"jupyter lab notebooks/{name}.ipynb" in page
    for doc in (ROOT / "docs").glob("*.md"):
        assert (site / "docs" / f"{doc.stem}.html").exists(), doc
    assert (site / "site" / "api.html").read_text().count("ladder_edu.tp.launch") > 0
    assert not (site / "notebooks" / "labs" / "source").exists()          # the answer key is not published


@pytest.fixture(scope="module")
def browser(site):
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    driver.quit()
    server.shutdown()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_notebook_page_shows_its_headings_and_figures_in_a_real_browser(browser, name):
    driver, base = browser
    driver.get(f"{base}/notebooks/{name}.html")
    headings = [h.text for h in driver.find_elements("css selector", "article h1, article h2, main h1, main h2")]
    assert headings and headings[0].strip(), f"{name}: no headings"
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc, i.complete, i.naturalWidth, i.naturalHeight])")
    figures = [i for i in images if "_images" in i[0] or i[0].startswith("data:image")]
    assert figures, f"{name}: no figures on the page"
    stored = sum("image/png" in o.get("data", {}) for c in json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
                 ["cells"] for o in c.get("outputs", []))
    assert len(figures) >= stored, f"{name}: {stored} pictures stored (widgets' included), {len(figures)} shown"
    broken = [i[0][:80] for i in images if not (i[1] and i[2] > 0 and i[3] > 0)]
    assert not broken, f"{name}: images that did not load: {broken}"
    remote = [s for s in driver.execute_script("return Array.from(document.scripts).map(s => s.src)")
              if "mathjax" in s.lower() and not s.startswith(base)]
    assert not remote, f"{name}: MathJax from the network: {remote}"
    typeset = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!window.MathJax || !MathJax.startup) { done(-1); return; }"
        "MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length), () => done(-2));")
    text = driver.execute_script("return (document.querySelector('article') || document.body).innerText")
    assert "\\(" not in text and "$$" not in text, f"{name}: an equation is shown raw"
    markdown = "".join("".join(c["source"]) for c in json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
                       ["cells"] if c["cell_type"] == "markdown")
    if "$" in markdown:
        assert typeset > 0, f"{name}: MathJax typeset nothing ({typeset})"

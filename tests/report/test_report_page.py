"""index.html in a real browser: every image loads, every table renders, nothing is fetched."""

import os
import re
import shutil
import subprocess

import pytest

from rdlens.cli import main
from rdlens.report.html import markdown_to_html

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_markdown_tables_lists_and_headings_become_html():
    out = markdown_to_html("# A\n\n| x | y |\n|---|---|\n| 1 | **2** |\n\n- one\n- `two`\n\ntext <b>", 1)
    assert "<h2>A</h2>" in out and "<th>x</th>" in out and "<td><strong>2</strong></td>" in out
    assert "<li><code>two</code></li>" in out and "text &lt;b&gt;" in out


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("page")
    assert main(["reproduce", "--profile", "smoke", "--quiet", "--device", "cpu", "--out", str(out),
                 "--rows", "rd-spot,lstm-sine,ddpm-mnist"]) == 0
    return out / "reproduce-smoke" / "index.html"


def test_the_page_is_self_contained(page):
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3  # fig2, fig3, patterns
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)  # nothing from the network


def test_the_page_opens_with_what_r_is_the_key_numbers_and_how_to_add_verdicts(page):
    """The story first: R in two sentences, each row's R beside the paper's, and (with no
    controls or claims in this run) the command that adds them; each figure links its data."""
    import json

    text = page.read_text()
    story = text[text.index('<section id="summary">'):text.index('<section id="table1">')]
    assert "the Dynamic Balance Ratio, is the mean norm" in story
    for r in json.loads((page.parent / "table1.json").read_text())["rows"]:
        assert f"<strong>{r['row']}</strong>" in story and f"R = {r['R']:.4f}" in story
    assert "--controls --claims" in story and "finished rows are reused" in story
    for target in ("table1.csv", "rows/rd-spot/seed0/trace.csv"):
        assert f'href="{target}"' in text and (page.parent / target).exists()


def test_the_page_renders_in_headless_chromium(page, tmp_path):
    if BROWSER is None:
        if os.environ.get("RDLENS_REQUIRE_BROWSER"):
            pytest.fail("RDLENS_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium); CI installs it")
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--window-size=1366,900", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs["ready"] == "yes"
    assert attrs["images-total"] == attrs["images-loaded"] == "3"
    assert int(attrs["tables"]) >= 3
    assert attrs["tables-cut"] == "0"  # every table fits a 1366 px window: no column cut off
    shot = tmp_path / "page.png"
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=180)
    assert shot.stat().st_size > 20000
    keep = os.environ.get("RDLENS_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)


def test_an_escaped_pipe_stays_inside_its_table_cell():
    from rdlens.report.html import markdown_to_html

    out = markdown_to_html("| a | b |\n|---|---|\n| mean \\|dv\\| | 2 |\n")
    assert "<td>mean |dv|</td><td>2</td>" in out

"""`latentgen report`: a self-contained page, checked in a real headless browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Appended to a copy of the page: after load, have every <video>/<audio> load its data, then
# record for each <img>, <video> and <audio> whether it decoded.
PROBE = """<script>
window.addEventListener('load', () => {
  const players = Array.from(document.querySelectorAll('video, audio'));
  const loaded = players.map(m => new Promise(done => {
    m.addEventListener('loadeddata', done); m.addEventListener('error', done);
    setTimeout(done, 5000); m.preload = 'auto'; m.load();
  }));
  Promise.all(loaded).then(() => {
    const media = Array.from(document.querySelectorAll('img, video, audio')).map(m => ({
      tag: m.tagName, alt: m.alt || m.parentNode.textContent,
      ready: m.tagName === 'IMG' ? (m.complete ? 4 : 0) : m.readyState,
      width: m.tagName === 'IMG' ? m.naturalWidth : (m.videoWidth || 0),
      error: m.error ? m.error.code : null}));
    document.body.setAttribute('data-probe', JSON.stringify(media));
  });
});
</script>"""


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def report(trained_run, tiny_data, tmp_path_factory):
    from latentgen_cli.app import main

    out = tmp_path_factory.mktemp("report") / "report.html"
    try:
        main(["report", str(trained_run), "--test-data", str(tiny_data["test"]), "--negative-data",
              str(tiny_data["negative"]), "--infer-steps", "20", "--out", str(out)])
    except SystemExit as exc:
        assert not exc.code
    return out


def test_report_is_self_contained(report):
    page = report.read_text()
    for heading in ("Configuration", "Reconstruction error", "Error curves",
                    "Samples over training", "Synthesis", "Synthesis, measured", "Reconstruction",
                    "Interpolation"):
        assert f"<h2>{heading}" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 6
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "PCA MSE" in page and "Regime:" in page and "AUPRC" in page and "PCA residual" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside


def render_in_browser(page: Path, tmp_path: Path) -> list[dict] | None:
    """Open ``page`` in headless Chromium; the probe's record of every <img>, <video> and
    <audio>, or None without a browser (a failure when LATENTGEN_REQUIRE_BROWSER is set)."""
    browser = _browser()
    if browser is None:
        if os.environ.get("LATENTGEN_REQUIRE_BROWSER"):
            pytest.fail("LATENTGEN_REQUIRE_BROWSER is set but no chromium is installed")
        return None
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, "the page did not finish loading in chromium"
    return json.loads(html.unescape(found.group(1)))


def test_report_renders_in_headless_chromium(report, tmp_path):
    media = render_in_browser(report, tmp_path)
    if media is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium)")
    images = [m for m in media if m["tag"] == "IMG"]
    assert len(images) >= 6
    broken = [m["alt"] for m in images if not (m["ready"] and m["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"


def test_report_refuses_a_folder_as_out(trained_run, cli, tmp_path):
    res = cli("report", trained_run, "--out", tmp_path)
    assert res.code == 2 and "is a folder" in res.err


def test_written_files_get_ordinary_permissions(report):
    umask = os.umask(0)
    os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o666 & ~umask


def test_report_prints_the_tables_it_writes(cli, trained_run, tiny_data, tmp_path):
    """The terminal shows the page's evaluation: the three errors beside PCA, the regime, the
    synthesis measures and the banked latents against the prior, with the page's numbers."""
    out = tmp_path / "r.html"
    res = cli("report", trained_run, "--test-data", tiny_data["test"], "--negative-data",
              tiny_data["negative"], "--infer-steps", "20", "--out", out)
    assert res.code == 0, res
    for text in ("reconstruction error", "negative", "regime:", "synthesis", "banked latents"):
        assert text in res.out
    page = out.read_text()
    model_mse = re.search(r"<td>test</td><td>\d+</td><td>([0-9.]+)</td>", page).group(1)
    assert re.search(rf"test\s.*{model_mse}", res.out)
    rel = re.search(r"rel = \(model - floor\) / \(PCA - floor\) = ([0-9.]+|undefined)",
                    page).group(1)
    assert (f"= {rel}" in res.out) if rel != "undefined" else ("rel: undefined" in res.out)

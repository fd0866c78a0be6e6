"""The HTML report in a real headless browser: the chart is drawn and the peak marker sits on the peak.

Two reports: the GPT-2 sample traced for real, and the Llama-2-7B sample traced fake (meta device),
whose report must stay under 5 MB and open in under 2 s. Each is opened in Chromium with a probe script
appended to a copy of the page; the probe reads the laid-out geometry (bounding boxes, what lies under
a point), the time the page took to parse and lay out, and clicks the table header and tree buttons;
it writes what it found into the DOM, which ``--dump-dom`` returns. Skipped when no Chromium is
installed; ``.ci/run`` installs one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from headless_browser import run_headless

import memadvise
from memadvise import Profile
from memadvise.reporters.html import render_html

ROOT = Path(__file__).resolve().parents[2]
MB = 10**6
SIZE_LIMIT = 5 * MB
OPEN_LIMIT_MS = 2000.0

PROBE = """<script>
(function(){
 function box(el){var r=el.getBoundingClientRect();return {x:r.x,y:r.y,w:r.width,h:r.height};}
 function kind(el){if(!el){return null;}
  var series=el.classList && el.classList.contains('series');
  return series ? 'series:'+el.getAttribute('data-category') : el.tagName;}
 var svg=document.getElementById('timeline-chart'), out={};
 out.plot=box(document.getElementById('plot-area'));
 out.series=[].map.call(svg.querySelectorAll('path.series'),function(p){
  var b=box(p);b.category=p.getAttribute('data-category');return b;});
 var marker=document.getElementById('peak-marker'), dot=box(marker.querySelector('circle'));
 out.dot={x:dot.x+dot.w/2,y:dot.y+dot.h/2};
 out.marker={index:+marker.getAttribute('data-index'),bytes:+marker.getAttribute('data-bytes')};
 out.axis={x0:+svg.getAttribute('data-x0'),x1:+svg.getAttribute('data-x1'),ymax:+svg.getAttribute('data-ymax')};
 out.below=kind(document.elementFromPoint(out.dot.x,out.dot.y+8));
 out.above=kind(document.elementFromPoint(out.dot.x,out.dot.y-8));
 out.on_dot=kind(document.elementFromPoint(out.dot.x,out.dot.y));
 out.rows=document.querySelectorAll('#layer-table tbody tr').length;
 out.ms=performance.now();
 var th=document.querySelector('#layer-table th:nth-child(4)');th.click();
 var params=[].map.call(document.querySelectorAll('#layer-table tbody tr'),function(r){
  return +r.cells[3].getAttribute('data-v');});
 out.sorted_descending=params.every(function(v,i){return i===0||params[i-1]>=v;});
 out.sort_mark=th.getAttribute('aria-sort');
 var details='#module-tree details';
 out.details=document.querySelectorAll(details).length;
 document.querySelector('button[data-expand="none"]').click();
 out.open_after_close=document.querySelectorAll(details+'[open]').length;
 document.querySelector('button[data-expand="all"]').click();
 out.open_after_open=document.querySelectorAll(details+'[open]').length;
 var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);
 document.body.appendChild(pre);
})();
</script>"""


def probe(browser: str, page: str, tmp_path: Path) -> dict:
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_headless(browser, probed, window=(1280, 1200))
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the probe did not run: " + dom[-500:]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def gpt2_profile() -> Profile:
    return memadvise.profile_file(
        str(ROOT / "sample_models" / "gpt2.py"), batch_size=2, device="cpu", scaling=False
    )


@pytest.fixture(scope="module")
def llama2_7b_fake_profile() -> Profile:
    model = ROOT / "sample_models" / "llama2_7b.py"
    # scaling=False: the report draws the traced steps; the batch-scaling trace only serves estimates.
    return memadvise.profile_file(
        str(model), batch_size=1, device="meta", target_device="cuda", scaling=False
    )


@pytest.fixture(params=["gpt2_profile", "llama2_7b_fake_profile"])
def sample(request: pytest.FixtureRequest, browser: str) -> Profile:
    """Traced only once a browser was found (the fixture ``browser`` skips first)."""
    return request.getfixturevalue(request.param)


@pytest.mark.slow
def test_chart_is_drawn_with_the_peak_where_the_profile_has_it(
    sample: Profile, browser: str, tmp_path: Path
) -> None:
    page = render_html(sample)
    size = len(page.encode("utf-8"))
    assert size < SIZE_LIMIT, f"report of {sample.model} is {size:,} bytes"
    got = probe(browser, page, tmp_path)
    print(f"\n{sample.model} ({sample.trace} trace): report {size:,} bytes, laid out in {got['ms']:.0f} ms")

    # every category with live bytes is drawn, as a visible area
    tl = sample.timeline
    expected = {c for c, col in tl.bytes.items() if any(col)}
    assert {s["category"] for s in got["series"]} == expected
    visible = {c for c in expected if max(tl.bytes[c]) > got["axis"]["ymax"] / 100}
    assert all(s["w"] > 100 for s in got["series"])
    assert {s["category"] for s in got["series"] if s["h"] >= 1} >= visible

    # the marker is at the profile's peak: its sample, its height on the axis
    totals = [sum(col[i] for col in tl.bytes.values()) for i in range(len(tl))]
    peak = totals.index(max(totals))
    assert got["marker"] == {"index": tl.index[peak], "bytes": sample.peak_bytes}
    plot, axis = got["plot"], got["axis"]
    want_x = plot["x"] + plot["w"] * (tl.index[peak] - axis["x0"]) / (axis["x1"] - axis["x0"])
    want_y = plot["y"] + plot["h"] * (1 - sample.peak_bytes / axis["ymax"])
    assert abs(got["dot"]["x"] - want_x) < 1.5 and abs(got["dot"]["y"] - want_y) < 1.5

    # ... which is the top of the drawn stack: area just below the marker, none just above it
    assert min(s["y"] for s in got["series"]) == pytest.approx(got["dot"]["y"], abs=1.5)
    assert str(got["below"]).startswith("series:")
    assert not str(got["above"]).startswith("series:")
    assert got["on_dot"] == "circle"  # the dot takes the pointer, for its tooltip

    # the per-layer table sorts, the module tree opens and closes
    assert got["rows"] == len(sample.layers)
    assert got["sorted_descending"] and got["sort_mark"] == "descending"
    assert got["details"] > 2 and got["open_after_close"] == 0 and got["open_after_open"] == got["details"]
    assert got["ms"] < OPEN_LIMIT_MS


LAYOUT_PROBE = """<script>
(function(){
 var table=document.getElementById('layer-table'),box=table.parentElement,r=table.getBoundingClientRect();
 var out={inner:window.innerWidth,scroll_width:box.scrollWidth,client_width:box.clientWidth,right:r.right,
  table_width:r.width};
 var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);
 document.body.appendChild(pre);
})();
</script>"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 1920])
def test_layer_table_is_not_a_small_box_scrolling_sideways(
    gpt2_profile: Profile, browser: str, tmp_path: Path, width: int
) -> None:
    """At 1400 and 1920 pixels the GPT-2 layer table shows every column without scrolling sideways, while
    the prose and the chart keep a readable width; a screenshot of each is kept in the test's folder."""
    page = render_html(gpt2_profile)
    probed = tmp_path / "layout.html"
    probed.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = run_headless(browser, probed, window=(width, 1200))
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the probe did not run: " + dom[-500:]
    got = json.loads(match.group(1).replace("&quot;", '"'))
    assert got["inner"] == width
    assert got["scroll_width"] <= got["client_width"] + 1, got  # no horizontal scroll inside the box
    assert got["right"] <= width, got  # the table ends inside the window
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    shot = tmp_path / f"report_{width}px.png"
    run_headless(browser, report, screenshot=shot, window=(width, 2400))
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot at {width} px: {shot}")

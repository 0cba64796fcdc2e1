"""The web view in real headless Chromium (Debian's package), driven over CDP.

Each page is loaded as a person would load it and checked for console errors, failed
loads and dialogs; what it shows is read back from the DOM; a screenshot of each page is
written (to $LOCALCKPT_SCREENSHOTS when set, e.g. ``docs/screenshots`` to refresh the
README's pictures; else to a temporary directory). With CI=true a missing Chromium fails
these tests; elsewhere they skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IN_CI
from websample import CHANGED, SCRIPT, Sample, ball_boxes, build, serving

import localckpt

OUR_SCRIPTS = "script[src='/static/app.js']"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from chromium import Browser, find_chromium
    except ImportError as exc:  # websocket-client missing
        _missing(f"cannot drive Chromium: {exc} (pip install websocket-client)")
    exe = find_chromium()
    if exe is None:
        _missing("no chromium on PATH (Debian: apt-get install -y chromium)")
    b = Browser(exe)
    try:
        yield b
    finally:
        b.close()


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why} (CI=true: a missing browser is a failure)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Sample]]:
    store = localckpt.open(str(tmp_path_factory.mktemp("webview")), create=True)
    sample = build(store)
    with serving(store) as (base, _):
        yield base, sample
    store.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("LOCALCKPT_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page()
    yield p
    browser.send("Target.closeTarget", {"targetId": p.target})
    browser.sessions.pop(p.session, None)


def pages_of(s: Sample) -> dict[str, str]:
    return {
        "timelines": "/",
        "timeline": f"/t/{s.timeline}",
        "checkpoint": f"/c/{s.try2}",
        "compare": f"/compare?a={s.try1}&b={s.try2}",
    }


def test_every_page_loads_without_console_errors(site: Any, page: Any, shots: Path) -> None:
    base, s = site
    for name, target in pages_of(s).items():
        page.goto(base + target)
        assert page.status == 200, name
        assert page.problems() == [], name
        assert page.dialogs == [], name
        assert page.count("img") == page.eval(
            "Array.from(document.images).filter(i => i.complete).length"), name
        page.screenshot(shots / f"{name}.png", max_height=1800)
        assert page.problems() == [], name  # loading every lazy image broke nothing
        broken = page.eval("Array.from(document.images).filter(i => i.naturalWidth === 0)"
                           ".map(i => i.src)")
        assert broken == [], name


def test_the_tree_shows_every_checkpoint_of_a_three_try_timeline(site: Any, page: Any) -> None:
    base, s = site
    page.goto(f"{base}/t/{s.timeline}")
    assert sorted(page.attrs("svg.tree g.node", "data-id")) == sorted(s.checkpoints)
    assert page.count("svg.tree path.edge") == 4
    assert sorted(page.texts("svg.tree g.node text.stage")) == [
        "detect", "detect", "detect", "root", "track"]
    labels = page.texts("svg.tree g.node text.label")
    assert "scenario · thr=0.3" in labels
    assert any(t.startswith('scenario · <script>alert("planted")') for t in labels)
    assert "config thr=0.3" in page.texts("svg.tree text.cfg")
    # nodes are drawn apart: no two overlap
    boxes = page.eval("Array.from(document.querySelectorAll('svg.tree g.node rect'))"
                      ".map(r => { const b = r.getBoundingClientRect(); "
                      "return [b.left, b.top, b.right, b.bottom]; })")
    for i, p in enumerate(boxes):
        for q in boxes[i + 1:]:
            assert p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1]


def test_picking_two_nodes_on_the_tree_compares_them(site: Any, page: Any) -> None:
    base, s = site
    page.goto(f"{base}/t/{s.timeline}")
    page.click(f"svg.tree g.node[data-id='{s.try2}'] rect")
    page.click(f"svg.tree g.node[data-id='{s.try3}'] rect")
    assert page.eval("document.getElementById('pick-a').value") == s.try2
    assert page.eval("document.getElementById('pick-b').value") == s.try3
    assert page.attrs("g.node.picked-a", "data-id") == [s.try2]
    assert page.attrs("g.node.picked-b", "data-id") == [s.try3]
    page.eval("document.querySelector('form.compare').submit()")
    page._loaded = False
    while not page._loaded:
        page.browser.pump(0.05)
    assert page.status == 200
    assert page.eval("location.pathname + location.search").startswith(
        f"/compare?a={s.try2}&b={s.try3}")
    assert page.problems() == []


def test_the_frame_strip_shows_the_frames(site: Any, page: Any) -> None:
    base, s = site
    page.goto(f"{base}/t/{s.timeline}")
    assert page.attrs(".strip a.thumb", "data-seq") == [str(i) for i in range(12)]
    assert page.texts(".strip a.thumb span")[3] == "#3 · 1.50 s"
    page.eval("document.getElementById('strip').scrollIntoView()")
    page.wait_for_images_all()
    sizes = page.eval("Array.from(document.querySelectorAll('.strip img'))"
                      ".map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[192, 108]] * 12  # the thumbnails, not the full frames


def test_a_checkpoint_page_draws_its_boxes_where_they_belong(site: Any, page: Any) -> None:
    base, s = site
    page.goto(f"{base}/c/{s.try1}")
    assert page.count("figure.frame") == 12
    assert page.count("figure.frame svg.overlay g.box") == 24
    assert page.texts("figure.frame svg.overlay g.box text")[:2] == ["ball 0.91", "ball 0.78"]
    page.eval("document.querySelector('figure.frame').scrollIntoView()")
    page.wait_for_images_all()
    # the first box's corners on screen, relative to its image, scaled to pixels
    got = page.eval("""(() => {
        const f = document.querySelector('figure.frame');
        const img = f.querySelector('img').getBoundingClientRect();
        const r = f.querySelector('g.box rect').getBoundingClientRect();
        const k = 640 / img.width;
        return [(r.left - img.left) * k, (r.top - img.top) * k,
                (r.right - img.left) * k, (r.bottom - img.top) * k];
    })()""")
    want = ball_boxes(0)[0]["box"]
    assert all(abs(g - w) < 4 for g, w in zip(got, want, strict=True)), (got, want)
    assert "stage" in page.texts("details.stage summary")[0] or page.count("details.stage") == 1


def test_the_compare_page_lists_exactly_the_changed_frames(site: Any, page: Any) -> None:
    base, s = site
    page.goto(f"{base}/compare?a={s.try1}&b={s.try2}")
    assert page.attrs("ol.changes li", "data-seq") == [str(k) for k in sorted(CHANGED)]
    assert page.attrs("section.pair", "id") == [f"f{k}" for k in sorted(CHANGED)]
    for seq, kind in CHANGED.items():
        text = page.texts(f"ol.changes li[data-seq='{seq}'] span")[0]
        assert {"moved": "~1 moved", "added": "+1", "relabelled": "~1 relabelled",
                "rescored": "~1 rescored", "removed": "-1"}[kind] == text, (seq, text)
    # differences are coloured on the side they belong to
    assert page.count("section.pair .sides > div:nth-child(2) g.box.added") == 1
    assert page.count("section.pair .sides > div:nth-child(1) g.box.removed") == 1
    assert page.count("section.pair .sides > div:nth-child(1) g.box.added") == 0
    for kind in ("moved", "relabelled", "rescored"):
        seq = next(k for k, v in CHANGED.items() if v == kind)
        assert page.count(f"#f{seq} g.box.{kind}") == 2, kind  # both sides of the pair
    colours = page.eval("[...new Set(Array.from(document.querySelectorAll("
                        "'g.box > rect:first-child')).map(r => getComputedStyle(r).stroke))]")
    assert len(colours) == 6  # unchanged and the five kinds of change, each its own colour
    stats = dict(zip(page.attrs("#summary .stat", "data-key"),
                     [t.split(None, 1)[0] if t else "" for t in
                      page.eval("Array.from(document.querySelectorAll('#summary .stat b'))"
                                ".map(b => b.textContent)")], strict=True))
    assert stats["changed frames"] == "5" and stats["boxes added"] == "1"


def test_a_planted_script_does_not_run(site: Any, page: Any, shots: Path) -> None:
    base, s = site
    for target in (f"/t/{s.timeline}", f"/c/{s.try3}", f"/c/{s.track}",
                   f"/compare?a={s.try1}&b={s.try3}&stage=detect", "/"):
        page.goto(base + target)
        assert page.dialogs == [], target
        assert page.problems() == [], target  # a blocked inline script would log here
        assert page.count("script") == page.count(OUR_SCRIPTS), target
        assert page.count("img[src='x'], img[onerror], [onerror]") == 0, target
    page.goto(f"{base}/c/{s.try3}")
    page.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert page.eval(f"document.body.textContent.includes({SCRIPT!r})")  # shown, as text
    assert page.count("figure.frame svg.overlay g.box") == 24
    page.screenshot(shots / "escaped.png", max_height=1200)


def test_an_unknown_id_gives_a_404_page(site: Any, page: Any, shots: Path) -> None:
    base, s = site
    for target in ("/c/0123456789abcdef", f"/compare?a={s.try1}&b=0123456789abcdef",
                   "/t/0123456789abcdef"):
        page.goto(base + target)
        assert page.status == 404, target
        assert page.texts("h1") == ["404 Not found"], target
        assert "Traceback" not in page.eval("document.body.textContent")
        problems = page.problems()
        assert len(problems) == 1 and "404" in problems[0], problems  # the page's own 404
    page.goto(f"{base}/c/0123456789abcdef")
    page.screenshot(shots / "not-found.png", max_height=600)
    page.goto(f"{base}/c/not..an..id")
    assert page.status == 400 and "is not a valid id" in page.texts("p.error")[0]

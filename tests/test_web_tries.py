"""The tries page and the synced side-by-side view in real headless Chromium.

The ranking shown must be ``Evaluation.rows()`` (order and every value), a header link
re-ranks it, and the slider, the buttons and the arrow keys move every pane to the same
frame with that frame's boxes. Screenshots go to $LOCALCKPT_SCREENSHOTS when set
(``docs/screenshots``), else to a temporary directory. With CI=true a missing Chromium
fails these tests; elsewhere they skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import browser_page, chromium_browser
from websample import N, Sample, ball_boxes, build, serving

import localckpt


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def labels_of(seq: int) -> list[dict[str, Any]]:
    """Ground truth: both balls, and a person on every third frame (no try finds it)."""
    truth = [{"box": b["box"], "label": "ball"} for b in ball_boxes(seq)]
    if seq % 3 == 0:
        truth.append({"box": [400.0, 200.0, 460.0, 330.0], "label": "person"})
    return truth


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Sample, str, Any]]:
    store = localckpt.open(str(tmp_path_factory.mktemp("tries")), create=True)
    sample = build(store)
    gt = store.save_stage_output(sample.timeline, None, "labels", {"frames": [
        {"sequence": s, "detections": labels_of(s)} for s in range(N)]})
    store.tag(gt, "ground-truth")
    store.tag(sample.try2, "candidate")
    with serving(store) as (base, _):
        yield base, sample, gt, store
    store.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("LOCALCKPT_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from browser_page(browser, 1400, 900)


def shown(page: Any) -> list[dict[str, Any]]:
    """The ranking as the page shows it: ids in order, and each metric cell's value."""
    return page.eval("""Array.from(document.querySelectorAll('#tries tr[data-id]')).map(tr => {
        const row = {id: tr.dataset.id, rank: Number(tr.dataset.rank)};
        tr.querySelectorAll('td[data-key]').forEach(td => { row[td.dataset.key] =
            td.dataset.value === 'None' ? null : Number(td.dataset.value); });
        return row; })""")


def expected(store: Any, s: Sample, gt: str, metric: str) -> list[dict[str, Any]]:
    ev = store.evaluate([s.try1, s.try2, s.try3], gt, "detect", metric=metric)
    keys = ("precision", "recall", "f1", "ap50", "ap", "tp", "fp", "fn")
    return [{"id": r["checkpoint_id"], "rank": r["rank"], **{k: r[k] for k in keys}}
            for r in ev.rows()]


def _close(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return [x["id"] for x in a] == [x["id"] for x in b] and all(
        (u[k] is None and v[k] is None) or abs(u[k] - v[k]) < 1e-12
        for u, v in zip(a, b, strict=True) for k in u if k != "id")


def test_the_tries_page_shows_the_ranking_of_evaluation_rows(site: Any, page: Any,
                                                             shots: Path) -> None:
    base, s, gt, store = site
    page.goto(f"{base}/t/{s.timeline}")  # found from the timeline's page
    assert page.attrs(f"a[href='/t/{s.timeline}/tries']", "href") == [f"/t/{s.timeline}/tries"]
    page.goto(f"{base}/t/{s.timeline}/tries")
    assert page.status == 200 and page.problems() == [] and page.dialogs == []
    rows = shown(page)
    assert _close(rows, expected(store, s, gt, "ap50"))
    assert len(rows) == 3 and rows[0]["ap50"] > rows[-1]["ap50"]
    # every row links to its checkpoint and to its frames beside the reference's
    for r in rows:
        assert page.count(f"#tries tr[data-id='{r['id']}'] a[href='/c/{r['id']}']") == 1
        side = page.attrs(f"#tries tr[data-id='{r['id']}'] a.side", "href")[0]
        assert side.startswith(f"/t/{s.timeline}/side?c={gt}%2C{r['id']}")
        diff = page.attrs(f"#tries tr[data-id='{r['id']}'] a.diff", "href")
        assert diff == [f"/compare?a={r['id']}&b={gt}&stage=detect&stage_b=labels"
                        "&moved_iou=0.5"]  # as `localckpt diff TRY truth`
    assert page.eval("document.getElementById('against').value") == gt
    page.screenshot(shots / "tries.png", width=1400, max_height=1100)


def test_a_header_re_ranks_by_its_metric(site: Any, page: Any) -> None:
    base, s, gt, store = site
    page.goto(f"{base}/t/{s.timeline}/tries")
    page.click("#tries th[data-key='fp'] a")
    page._loaded = False
    while not page._loaded:
        page.browser.pump(0.05)
    assert page.eval("location.search").endswith("metric=fp")
    assert _close(shown(page), expected(store, s, gt, "fp"))
    # against a try, both have the stage: the frame diff is linked too
    page.goto(f"{base}/t/{s.timeline}/tries?against={s.try1}&metric=recall")
    assert _close(shown(page), [r for r in _rows_against(store, s)])
    assert page.count("#tries a.diff") == 2


def _rows_against(store: Any, s: Sample) -> list[dict[str, Any]]:
    ev = store.evaluate([s.try2, s.try3], s.try1, "detect", metric="recall")
    keys = ("precision", "recall", "f1", "ap50", "ap", "tp", "fp", "fn")
    return [{"id": r["checkpoint_id"], "rank": r["rank"], **{k: r[k] for k in keys}}
            for r in ev.rows()]


def wait_for(page: Any, expression: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.eval(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.browser.pump(0.05)


def panes(page: Any) -> list[tuple[str, int, int]]:
    """(checkpoint id, frame shown, boxes drawn) of each pane."""
    return [tuple(x) for x in page.eval("""Array.from(document.querySelectorAll('.pane')).map(p =>
        [p.dataset.id, Number(p.querySelector('figure.frame').dataset.seq),
         p.querySelectorAll('svg.overlay g.box').length])""")]


def boxes_at(store: Any, cid: str, stage: str, seq: int) -> int:
    out = store.load_stage_output(cid, stage)
    frames = out["frames"]
    value = frames[str(seq)] if isinstance(frames, dict) else next(
        f for f in frames if f["sequence"] == seq)
    return len(value["detections"])


def slide(page: Any, value: str) -> None:
    """Move the slider as a drag does: set its value, then fire its input event."""
    page.eval(f"(r => {{ r.value = String({value}); "
              "r.dispatchEvent(new Event('input', {bubbles: true})); })"
              "(document.getElementById('slider'))")


def test_the_slider_and_the_arrow_keys_move_every_pane(site: Any, page: Any,
                                                       shots: Path) -> None:
    base, s, gt, store = site
    ids = [gt, s.try1, s.try2]
    page.goto(f"{base}/t/{s.timeline}/side?c={','.join(ids)}&stage=detect")
    assert page.status == 200 and page.problems() == []
    def drawn(seq: int) -> list[tuple[str, int, int]]:
        return [(gt, seq, len(labels_of(seq))),
                *((c, seq, boxes_at(store, c, "detect", seq)) for c in (s.try1, s.try2))]

    assert panes(page) == drawn(0)
    slide(page, "'5'")
    wait_for(page, "Array.from(document.querySelectorAll('.pane figure.frame'))"
                   ".every(f => f.dataset.seq === '5')")
    assert panes(page) == drawn(5)
    assert page.texts("#where") == ["frame 5 · 2.50 s"]
    assert "&seq=5&" in page.eval("location.search")
    page.wait_for_images_all()
    page.screenshot(shots / "side.png", width=1400, max_height=1000)
    for key, seq in (("ArrowRight", 6), ("ArrowRight", 7), ("ArrowLeft", 6)):
        for kind in ("keyDown", "keyUp"):
            page.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=39 if key == "ArrowRight" else 37)
        wait_for(page, "Array.from(document.querySelectorAll('.pane figure.frame'))"
                       f".every(f => f.dataset.seq === '{seq}')")
        assert panes(page) == drawn(seq)
        assert page.eval("document.getElementById('slider').value") == str(seq)
    page.click("#next")
    wait_for(page, "document.querySelector('.pane figure.frame').dataset.seq === '7'")
    slide(page, "r.max")
    wait_for(page, f"document.querySelector('.pane figure.frame').dataset.seq === '{N - 1}'")
    assert {p[1] for p in panes(page)} == {N - 1}
    assert page.problems() == []


def test_picking_tries_on_the_page_opens_them_side_by_side(site: Any, page: Any,
                                                           shots: Path) -> None:
    base, s, gt, _ = site
    page.goto(f"{base}/t/{s.timeline}/tries")
    for cid in (s.try2, s.try3):
        page.click(f"#tries tr[data-id='{cid}'] input[type=checkbox]")
    page.eval("document.querySelector('form.side-form').submit()")
    page._loaded = False
    while not page._loaded:
        page.browser.pump(0.05)
    assert page.status == 200
    assert sorted(p[0] for p in panes(page)) == sorted([gt, s.try2, s.try3])
    assert page.count(".panes.n3") == 1
    page.goto(f"{base}/t/{s.timeline}/side?c={gt}")
    assert page.status == 400 and "pick 2 to 4" in page.texts("p.error")[0]


def test_a_try_without_boxes_is_left_out_of_the_ranking_and_named(
        tmp_path: Path, page: Any, shots: Path) -> None:
    """One save of the stage that holds no boxes (not frame-keyed) made the whole page
    an error; the other tries are ranked and it is named, with why, above them."""
    store = localckpt.open(str(tmp_path / "s"), create=True)
    s = build(store, frames=6)
    gt = store.save_stage_output(s.timeline, None, "labels", {"frames": [
        {"sequence": n, "detections": labels_of(n)} for n in range(6)]})
    odd = store.save_stage_output(s.timeline, None, "detect", {"count": 12},
                                  is_scenario=True, scenario_label="summary")
    short = store.short_ids([odd])[odd]
    with serving(store) as (base, _):
        page.goto(f"{base}/t/{s.timeline}/tries?against={gt}")
        assert page.status == 200 and page.problems() == []
        assert [r["id"] for r in shown(page)] == [
            r["checkpoint_id"] for r in store.evaluate([s.try1, s.try2, s.try3], gt).rows()]
        note = page.eval("document.getElementById('skipped').innerText")
        assert "1 try of detect left out" in note and short in note
        assert "not frame-keyed" in note
        assert page.count(f"#skipped a[href='/c/{odd}']") == 1
        page.screenshot(shots / "tries-skipped.png", width=1400, max_height=900)
    store.close()


def test_the_form_shows_the_stage_the_message_names(site: Any, page: Any, shots: Path) -> None:
    """?stage=segment (no try has it) said "no checkpoint added stage segment" above a
    stage dropdown showing detect (nothing was selected: the browser shows the first)."""
    base, s, _, _ = site
    page.goto(f"{base}/t/{s.timeline}/tries?stage=segment")
    assert page.status == 200 and page.problems() == []
    assert "added stage segment" in page.texts("#message")[0]
    assert page.eval("document.querySelector('select[name=stage]').value") == "segment"
    page.screenshot(shots / "tries-unknown-stage.png", width=1400, max_height=400)

"""Non-square pixels in the web view: frames stored at their coded size are shown at the
shape players show (``sample_aspect_ratio`` of the timeline's source_info), with their
boxes where they belong, in real headless Chromium (as test_web_browser)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import browser_page, chromium_browser
from PIL import Image
from websample import serving

import localckpt
from localckpt.testing.videos import write_video
from localckpt.types import Timeline
from localckpt.web.data import pixel_aspect

W, H = 320, 240
BOX = [40.0, 60.0, 200.0, 180.0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from browser_page(browser)


def _timeline(info: Any) -> Timeline:
    from datetime import UTC, datetime

    return Timeline("01234567-89ab-7def-8123-456789abcdef", "v.mp4", "p", 2.0, None,
                    "01234567-89ab-7def-8123-456789abcdee", 1, datetime.now(UTC),
                    source_info=info)


@pytest.mark.parametrize("info, aspect", [
    ({"sample_aspect_ratio": "8:9"}, 8 / 9), ({"sample_aspect_ratio": "32:27"}, 32 / 27),
    ({"sample_aspect_ratio": "1:1"}, 1.0), ({}, 1.0), ({"sample_aspect_ratio": None}, 1.0),
    ({"sample_aspect_ratio": "0:1"}, 1.0), ({"sample_aspect_ratio": "1:0"}, 1.0),
    ({"sample_aspect_ratio": "1:11"}, 1.0), ({"sample_aspect_ratio": "8/9"}, 1.0),
    ({"sample_aspect_ratio": "-8:9"}, 1.0), ({"sample_aspect_ratio": "٨:٩"}, 1.0),
    ({"sample_aspect_ratio": "99999:99999"}, 1.0), ({"sample_aspect_ratio": [8, 9]}, 1.0),
    ({"sample_aspect_ratio": "8:9" + "0" * 100}, 1.0),
])
def test_a_pixel_aspect_is_read_only_from_a_plain_ratio(info: Any, aspect: float) -> None:
    """source_info comes from any store a sync or bundle brings: anything else is 1."""
    assert pixel_aspect(_timeline(info)) == pytest.approx(aspect)


def _store(tmp_path: Path) -> tuple[Any, str, str]:
    path = tmp_path / "dv.mp4"
    write_video(path, 4, size=(W, H), pixel_aspect=Fraction(8, 9))
    store = localckpt.open(str(tmp_path / "s"), create=True)
    tl = store.ingest_video(path, fps=None)
    cid = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": s, "detections": [{"box": BOX, "label": "player", "score": 0.9}]}
        for s in range(4)]})
    return store, tl.id, cid


def test_frames_and_boxes_are_shown_at_the_shape_players_show(
        tmp_path: Path, page: Any) -> None:
    """An 8:9 frame of 320 x 240 pixels is shown 284 x 240 in shape (a 4:3 picture of
    a 720 x 480 DV frame is the same); it was shown at its coded shape, and a round ball
    drawn by the source was an egg on the page."""
    store, tid, cid = _store(tmp_path)
    where = os.environ.get("LOCALCKPT_SCREENSHOTS")
    shots = Path(where) if where else tmp_path
    with serving(store) as (base, _):
        for target in (f"/c/{cid}", f"/t/{tid}"):
            page.goto(base + target)
            assert page.status == 200 and page.problems() == [], target
            page.wait_for_images_all()
            got = page.eval("""(() => {
                const f = document.querySelector('#viewer figure.frame');
                const img = f.querySelector('img').getBoundingClientRect();
                const svg = f.querySelector('svg.overlay').getBoundingClientRect();
                const box = f.querySelector('g.box rect.outline');
                const r = box ? box.getBoundingClientRect() : null;
                return {img: [img.left, img.top, img.width, img.height],
                        svg: [svg.left, svg.top, svg.width, svg.height],
                        box: r && [(r.left - img.left) / img.width * 320,
                                   (r.top - img.top) / img.height * 240,
                                   (r.right - img.left) / img.width * 320,
                                   (r.bottom - img.top) / img.height * 240]};
            })()""")
            w, h = got["img"][2:]
            assert w / h == pytest.approx(W * 8 / 9 / H, rel=0.02), (target, got)
            assert got["svg"] == pytest.approx(got["img"], abs=1), (target, got)
            if target.startswith("/c/"):  # boxes stay on the pixels they name
                assert got["box"] == pytest.approx(BOX, abs=3), got
            page.screenshot(shots / f"anamorphic-{target[1]}.png", max_height=1400)
        thumb = page.eval("(() => { const i = document.querySelector('.strip img'); "
                          "return [i.naturalWidth, i.naturalHeight]; })()")
        assert thumb == [192, round(H * 192 / (W * 8 / 9))]
    store.close()


def test_a_square_pixel_timeline_is_drawn_as_before(tmp_path: Path) -> None:
    """The markup of square pixels is unchanged: no anamorphic class, no SVG size."""
    path = tmp_path / "sq.mp4"
    write_video(path, 2, size=(W, H))
    with localckpt.open(str(tmp_path / "s"), create=True) as store:
        tl = store.ingest_video(path, fps=None)
        with serving(store) as (base, _):
            import urllib.request

            html = urllib.request.urlopen(f"{base}/t/{tl.id}").read().decode()
            thumb = urllib.request.urlopen(f"{base}/thumbs/{tl.id}/0.jpg").read()
    assert "anamorphic" not in html and 'class="shot"' in html
    assert Image.open(io.BytesIO(thumb)).size == (192, 144)

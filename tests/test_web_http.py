"""The web view over HTTP, without a browser: JSON endpoints, images, escaping, hostile paths.

Requests go through http.client on a real socket, so request targets reach the server
exactly as written (no client-side normalisation of ``..``).
"""

from __future__ import annotations

import http.client
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from websample import CHANGED, SCRIPT, Sample, ball_boxes, build, serving

import localckpt
from localckpt.ids import id_tail
from localckpt.web.pages import STRIP_PAGE


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Sample, Any]]:
    store = localckpt.open(str(tmp_path_factory.mktemp("web")), create=True)
    sample = build(store)
    with serving(store) as (base, server):
        yield base, server, sample, store
    store.close()


def get(base: str, target: str, *, method: str = "GET", host: str | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    hostport = base.removeprefix("http://")
    conn = http.client.HTTPConnection(hostport, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or hostport)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(base: str, target: str) -> Any:
    status, headers, body = get(base, target)
    assert status == 200, body[:300]
    assert headers["content-type"] == "application/json"
    return json.loads(body)


# -- JSON endpoints -----------------------------------------------------------------------


def test_the_index_says_the_seconds_ls_says(new_store: Any, tmp_path: Path) -> None:
    """The index's duration is the seconds of source the frames cover, as `localckpt ls`
    gives them: sampled above the source's rate, 25 frames of a 1 s video at 100 fps cover
    1 s, where frames / fps said 0.25 s."""
    from localckpt.render import sampled_seconds
    from localckpt.testing.videos import write_video
    from localckpt.web import App

    store = new_store("embedded")
    path = tmp_path / "clip.mp4"
    write_video(path, 25)
    tl = store.ingest_video(path, fps=100)
    assert tl.frame_count == 25 and sampled_seconds(tl) == pytest.approx(1.0)
    resp = App(store).handle("GET", "/api/timelines", "localhost")
    assert json.loads(resp.body)["timelines"][0]["duration"] == pytest.approx(1.0)


def test_api_timelines_and_timeline(site: Any) -> None:
    base, _, s, _ = site
    page = get_json(base, "/api/timelines")
    assert (page["total"], page["start"]) == (1, 0)
    rows = page["timelines"]
    assert [r["id"] for r in rows] == [s.timeline]
    assert rows[0]["checkpoints"] == 7 and rows[0]["frame_count"] == 12
    assert rows[0]["duration"] == 6.0 and rows[0]["fps"] == 2.0
    assert id_tail(s.timeline).startswith(rows[0]["short_id"])
    tree = get_json(base, f"/api/timelines/{s.timeline}")
    assert tree["timeline"]["id"] == s.timeline
    assert sorted(c["id"] for c in tree["checkpoints"]) == sorted(s.checkpoints)
    labels = {c["id"]: c["scenario_label"] for c in tree["checkpoints"]}
    assert labels[s.try3] == SCRIPT  # JSON carries the text as it is
    tags = {c["id"]: c["tags"] for c in tree["checkpoints"]}
    assert tags[s.try2] == ["best"] and tags[s.try1] == []
    shorts = [c["short_id"] for c in tree["checkpoints"]]
    assert len(set(shorts)) == len(shorts) and all(len(x) >= 8 for x in shorts)


def test_api_timeline_lists_its_open_runs_as_the_page_draws_them(tmp_path: Any) -> None:
    store = localckpt.open(str(tmp_path / "runs"), create=True)
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(6)]
    tl = store.create_timeline("v.mp4", "p", frames, codec="png")
    run = store.begin_run(tl.id, None, "detect", version="v1")
    run.put({0: {"n": 0}, 1: {"n": 1}})
    closed = store.begin_run(tl.id, None, "track", memo=False)
    closed.put({s: 1 for s in range(6)})
    closed.commit()
    with serving(store) as (base, _):
        view = get_json(base, f"/api/timelines/{tl.id}")
        page = get(base, f"/t/{tl.id}")[2].decode()
    assert [(r["id"], r["stage"], r["state"], r["done"], r["total"], r["todo"])
            for r in view["runs"]] == [(run.id, "detect", "open", 2, 6, 4)]
    assert view["runs"][0]["parent_id"] == tl.root_checkpoint_id
    assert view["runs"][0]["short_id"] == store.short_id(run.id, "run")
    assert f'data-run="{run.id}"' in page and "pending 2/6" in page
    store.close()


def test_an_open_run_under_a_checkpoint_not_drawn_is_counted_apart(tmp_path: Any) -> None:
    from localckpt.web.outline import DEPTH

    store = localckpt.open(str(tmp_path / "deep"), create=True)
    tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 2, codec="png")
    parent = None
    for i in range(DEPTH + 2):  # deeper than the page draws
        parent = store.save_stage_output(tl.id, parent, f"s{i}", {"i": i})
    store.begin_run(tl.id, parent, "deep")
    store.begin_run(tl.id, None, "shallow")
    with serving(store) as (base, _):
        page = get(base, f"/t/{tl.id}")[2].decode()
    assert "2 open stage runs (dashed; 1 under checkpoints not drawn)" in page
    assert page.count('class="pending"') == 1
    store.close()


def test_api_frames_are_paged(site: Any) -> None:
    base, _, s, _ = site
    page = get_json(base, f"/api/timelines/{s.timeline}/frames?start=10&limit=5")
    assert page["total"] == 12 and page["start"] == 10
    assert [f["sequence"] for f in page["frames"]] == [10, 11]
    f = page["frames"][0]
    assert (f["width"], f["height"], f["timestamp"]) == (640, 360, 5.0)
    assert f["image"] == f"/frames/{s.timeline}/10.jpg"
    assert f["thumbnail"] == f"/thumbs/{s.timeline}/10.jpg"
    assert len(get_json(base, f"/api/timelines/{s.timeline}/frames?limit=100000")
               ["frames"]) == 12


def test_api_checkpoint_output_and_compare(site: Any) -> None:
    base, _, s, store = site
    c = get_json(base, f"/api/checkpoints/{s.track}")
    assert c["lineage"] == [s.root, s.try1, s.track] and c["children"] == [s.mot, s.merged]
    assert c["tags"] == [] and get_json(base, "/api/checkpoints/best")["id"] == s.try2
    assert get_json(base, "/api/checkpoints/best")["tags"] == ["best"]
    assert sorted(c["stage_hashes"]) == ["detect", "track"]
    out = get_json(base, f"/api/checkpoints/{s.track}/outputs/detect")
    assert out == store.load_stage_output(s.track, "detect")
    d = get_json(base, f"/api/compare?a={s.try1}&b={s.try2}")
    assert d["stage"] == "detect" and d["changed"] == sorted(CHANGED)
    assert d == store.frame_diff(s.try1, s.try2, "detect").to_dict()
    for seq, kind in CHANGED.items():
        frame = d["frames"][str(seq)]
        assert frame[kind if kind != "removed" else "removed"], (seq, frame)
    loose = get_json(base, f"/api/compare?a={s.try1}&b={s.try2}&stage=detect&match_iou=0.9")
    assert loose["match_iou"] == 0.9 and 2 in loose["changed"]


@pytest.mark.parametrize("target, status, says", [
    ("/api/checkpoints/{try1}/outputs/nosuch", 404, "has no stage 'nosuch'"),
    ("/api/checkpoints/0123456789abcdef/outputs/detect", 404, "no checkpoint"),
    ("/api/timelines/0123456789abcdef", 404, "no timeline"),
    ("/api/compare?a={try1}", 400, "the query needs b=<checkpoint id"),
    ("/api/compare?a={try1}&b={try2}&stage=track", 404, "has no stage 'track'"),
    ("/api/compare?a={try1}&b={try2}&match_iou=2", 400, "match_iou must be a number in"),
    ("/api/compare?a={try1}&b={try2}&match_iou=x", 400, "match_iou must be a number"),
    ("/api/timelines/{timeline}/frames?start=-1", 400,
     "start must be a whole number >= 0, not '-1'"),
    ("/api/compare?a={try3}&b={try3}&stage=nosuch", 404, "has no stage 'nosuch'"),
    ("/api/compare?a={track}&b={track}&stage=track", 400, "not frame-keyed"),
    ("/api/checkpoints/nosuchtag/outputs/detect", 404, "no checkpoint matches 'nosuchtag'"),
    ("/api/nothing", 404, "there is no page at '/api/nothing'"),
])
def test_api_errors_are_json_that_say_what_was_wrong(site: Any, target: str, status: int,
                                                    says: str) -> None:
    base, _, s, _ = site
    code, headers, body = get(base, target.format(**attrs_of(s)))
    assert code == status, body
    assert headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["status"] == status and says in data["message"]


def attrs_of(s: Sample) -> dict[str, str]:
    import attrs

    return attrs.asdict(s)


# -- images -------------------------------------------------------------------------------


def test_frames_and_thumbnails_are_jpeg(site: Any) -> None:
    base, server, s, store = site
    status, headers, body = get(base, f"/frames/{s.timeline}/4.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    img = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert img.shape == (360, 640, 3)
    want = store.get_frame(s.timeline, 4).image.astype(int)
    assert np.abs(img.astype(int) - want).mean() < 3  # the stored JPEG, as stored
    made = server.app.images.thumbs.made
    status, headers, thumb = get(base, f"/thumbs/{s.timeline}/4.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb)).size == (192, 108)
    assert get(base, f"/thumbs/{s.timeline}/4.jpg")[2] == thumb
    assert server.app.images.thumbs.made == made + 1  # made once, then cached
    assert get(base, f"/frames/{s.timeline}/99.jpg")[0] == 404
    assert get(base, "/frames/0123456789abcdef/1.jpg")[0] == 404


# -- hostile requests ---------------------------------------------------------------------

TRAVERSALS = [
    "/frames/../../etc/passwd",
    "/frames/{timeline}/../../../../etc/passwd",
    "/frames/%2e%2e/%2e%2e/etc/passwd",
    "/frames/..%2f..%2f..%2fetc%2fpasswd",
    "/frames/{timeline}/..%2F..%2F..%2Fetc%2Fpasswd",
    "/frames/%2e%2e%2f%2e%2e%2fetc/passwd.jpg",
    "/frames/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/frames/%252e%252e/%252e%252e/passwd.jpg",
    "/thumbs/..%5c..%5cetc%5cpasswd/1.jpg",
    "/static/../server.py",
    "/static/..%2fserver.py",
    "/static/%2e%2e%2fserver.py",
    "/static/%252e%252e%252fserver.py",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/__init__.py",
    "/static/%2fetc%2fpasswd",
    "//etc/passwd",
    "/t/..%2f..%2fetc%2fpasswd",
    "/c/%2e%2e",
    "/api/checkpoints/..%2f..%2fetc%2fpasswd/outputs/detect",
    "/api/checkpoints/{try1}/outputs/..%2f..%2f..%2fetc%2fpasswd",
    "/frames/{timeline}/1.jpg%00.txt",
    "/frames/{timeline}/%ff.jpg",
    "/frames/{timeline}/-1.jpg",
    "/frames/{timeline}/01.jpg",
    "/frames/no-such-tag/1.jpg",
    "/view/..%2f..%2fetc%2fpasswd?i=0",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_path_from_a_request_reaches_the_filesystem(site: Any, target: str) -> None:
    base, _, s, _ = site
    status, _, body = get(base, target.format(**attrs_of(s)))
    assert status in (400, 404), (status, body[:200])
    text = body.decode("utf-8", "replace")
    assert "root:" not in text and "import " not in text and "Traceback" not in text


@pytest.mark.parametrize("target, says", [
    ("/t/not%20an%20id", "is not a valid id"),
    ("/c/" + "a" * 129, "is not a valid id"),
    ("/c/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "is not a valid id"),
    ("/compare?a=%3Cscript%3Ealert(1)%3C/script%3E&b=x", "is not a valid id"),
    ("/frames/%3Cb%3E/1.jpg", "is not a valid id"),
    ("/t/{timeline}?start=abc", "start must be a whole number"),
])
def test_malformed_ids_are_400_pages_with_the_reason_escaped(site: Any, target: str,
                                                             says: str) -> None:
    base, _, s, _ = site
    status, _, body = get(base, target.format(**attrs_of(s)))
    assert status == 400, body[:300]
    text = body.decode()
    assert says in text
    assert "<script>alert" not in text and "<b>" not in text


def test_unknown_ids_give_a_404_page_not_a_traceback(site: Any) -> None:
    base, _, s, _ = site
    for target in ("/t/0123456789abcdef", "/c/0123456789abcdef",
                   f"/compare?a={s.try1}&b=0123456789abcdef", "/no/such/page"):
        status, headers, body = get(base, target)
        assert status == 404 and headers["content-type"].startswith("text/html"), target
        text = body.decode()
        assert "404 Not found" in text and "Traceback" not in text


def test_only_get_and_head_the_store_is_never_written(site: Any) -> None:
    base, _, s, store = site
    before = sorted(c.id for c in store.checkpoints(s.timeline))
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, body = get(base, f"/c/{s.try1}", method=method, body=b"x=1")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert b"read-only" in body
    status, headers, body = get(base, f"/c/{s.try1}", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    assert sorted(c.id for c in store.checkpoints(s.timeline)) == before


def test_requests_for_other_hosts_are_refused_on_loopback(site: Any) -> None:
    base, _, _, _ = site
    port = base.rsplit(":", 1)[1]
    assert get(base, "/", host=f"evil.example:{port}")[0] == 403  # DNS rebinding
    assert get(base, "/", host=f"localhost:{port}")[0] == 200
    assert get(base, "/api/timelines", host=f"[::1]:{port}")[0] == 200
    assert get(base, "/", host="127.0.0.1")[0] == 200


def test_every_response_forbids_inline_and_foreign_scripts(site: Any) -> None:
    base, _, s, _ = site
    for target in ("/", f"/t/{s.timeline}", f"/frames/{s.timeline}/1.jpg", "/api/timelines",
                   "/c/0123456789abcdef", f"/view/{s.timeline}?i=2", "/static/app.js"):
        headers = get(base, target)[1]
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"


# -- pages: escaping and paging -----------------------------------------------------------


def test_planted_script_shows_as_text_on_every_page(site: Any) -> None:
    base, _, s, _ = site
    pages = [f"/t/{s.timeline}", f"/c/{s.try3}", f"/c/{s.track}", "/",
             f"/compare?a={s.try1}&b={s.try3}"]
    for target in pages:
        status, _, body = get(base, target)
        text = body.decode()
        assert status == 200, target
        raw = [bad for bad in ("<script>alert", "<img src=x", "<b>final</b>") if bad in text]
        assert raw == [], target  # markup from the store never reaches the page unescaped
        scripts = text.count("<script")
        assert scripts == text.count('<script src="/static/app.js" defer>'), target
    assert "&lt;script&gt;alert(&quot;planted&quot;)&lt;/script&gt;" in get(
        base, f"/c/{s.try3}")[2].decode()


def test_timeline_page_strip_is_paged(tmp_path: Any) -> None:
    store = localckpt.open(str(tmp_path / "big"), create=True)
    frames = np.zeros((300, 8, 8, 3), np.uint8)
    tl = store.create_timeline("big.mp4", "p", frames, fps=25.0)
    with serving(store) as (base, _):
        page = get(base, f"/t/{tl.id}")[2].decode()
        assert page.count('class="thumb') == STRIP_PAGE
        assert f"frames 0-{STRIP_PAGE - 1:,} of 300" in page
        last = get(base, f"/t/{tl.id}?start=240")[2].decode()
        assert last.count('class="thumb') == 60 and 'data-seq="299"' in last
        assert get(base, f"/t/{tl.id}?start=5000")[2].decode().count('class="thumb') == 0
    store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                           allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30)


@given(json_values, st.integers(0, 120))
def test_pretty_json_on_pages_is_the_same_json(value: Any, width: int) -> None:
    from localckpt.web.html import json_text

    assert json.loads(json_text(value, width)) == value


def test_compare_pages_long_lists(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from localckpt.web import compare

    base, _, s, _ = site
    monkeypatch.setattr(compare, "LIST_PAGE", 2)
    monkeypatch.setattr(compare, "COMPARE_PAGE", 2)
    target = f"/compare?a={s.try1}&b={s.try2}"
    first = get(base, target)[2].decode()
    assert re.findall(r'<li data-seq="(\d+)"', first) == ["2", "5"]
    assert re.findall(r'<section class="pair" id="f(\d+)"', first) == ["2", "5"]
    assert 'href="#f5"' in first and "listing changed frames 0-1 of 5" in first
    later = get(base, target + "&start=2")[2].decode()
    assert re.findall(r'<li data-seq="(\d+)"', later) == ["7", "9"]
    assert re.findall(r'<section class="pair" id="f(\d+)"', later) == ["7", "9"]
    last = get(base, target + "&start=4")[2].decode()
    assert re.findall(r'<section class="pair" id="f(\d+)"', last) == ["11"]


def test_a_request_body_is_never_read_as_the_next_request(site: Any) -> None:
    import socket

    base, _, _, _ = site
    host, port = base.removeprefix("http://").split(":")
    hidden = f"GET /api/timelines HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
    request = (f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(hidden)}\r\n"
               f"\r\n{hidden}")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 405") and data.count(b"HTTP/1.1 ") == 1


def test_compare_across_two_timelines_is_refused_with_the_aligned_comparison_offered(
        tmp_path: Any) -> None:
    store = localckpt.open(str(tmp_path / "two"), create=True)
    one, two = build(store, frames=3), build(store, frames=4, tag=None)
    with serving(store) as (base, _):
        status, headers, body = get(base, f"/compare?a={one.try1}&b={two.try1}")
        api_status, _, api_body = get(base, f"/api/compare?a={one.try1}&b={two.try1}")
    store.close()
    page = body.decode()
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert "Different timelines" in page and "Traceback" not in page
    assert "not compared frame by frame" in page
    # both timelines are named, and the aligned comparison is one click away
    assert f"/t/{one.timeline}" in page and f"/t/{two.timeline}" in page
    assert f'href="/compare?a={one.try1}&amp;b={two.try1}&amp;stage=detect&amp;align=time"' \
        in page
    found = json.loads(api_body)
    assert api_status == 400 and "not compared frame by frame" in found["message"]
    assert any("align=time" in x["href"] for x in found["links"])


def test_the_comparison_aligned_by_time(tmp_path: Any) -> None:
    """align=time asks Store.frame_diff(..., align="time"); the page then says that
    alignment was used."""
    store = localckpt.open(str(tmp_path / "aligned"), create=True)
    one, two = build(store, frames=4), build(store, frames=8, tag=None)
    with serving(store) as (base, _):
        status, _, body = get(base, f"/compare?a={one.try1}&b={two.try1}&align=time")
        api_status, _, api_body = get(base, f"/api/compare?a={one.try1}&b={two.try1}"
                                            "&align=time")
        bad = get(base, f"/compare?a={one.try1}&b={two.try1}&align=space")
    store.close()
    page = body.decode()
    assert bad[0] == 400 and "align must be &#x27;time&#x27;" in bad[2].decode()
    assert status == 200 and 'id="aligned"' in page and "aligned by time" in page
    assert api_status == 200 and json.loads(api_body)["align"] == "time"


@pytest.mark.parametrize("iou", ["5", "0", "-1", "nan", "abc"])
def test_the_tries_page_refuses_an_iou_out_of_range_as_a_bad_request(site: Any,
                                                                     iou: str) -> None:
    """?iou=abc was a 400 and ?iou=5 a 200 with the error inside the page: both are the
    request's fault."""
    base, _, s, _ = site
    code, headers, body = get(base, f"/t/{s.timeline}/tries?iou={iou}")
    assert code == 400 and headers["content-type"].startswith("text/html")
    assert b"iou must be a number" in body
    assert get(base, f"/t/{s.timeline}/tries?iou=0.75")[0] == 200


# -- what a reader of the pages is told (review in a browser, as a new user) ---------------


@pytest.mark.parametrize(("target", "says"), [
    ("/?start=999", "no timelines from 999: there are 1"),
    ("/?start=99999999999999999999", "no timelines from 1,000,000,000,000: there are 1"),
    ("/t/{timeline}?start=5000", "no frames from 5,000: there are 12"),
    ("/c/{try1}?start=999999", "no frames from 999,999: there are 12"),
    ("/compare?a={try1}&b={try2}&start=99999", "no changed frames from 99,999: there are 5"),
])
def test_a_start_past_the_end_says_so_and_leads_back(site: Any, target: str,
                                                      says: str) -> None:
    """An edited URL (or a list that shrank) once said "frames 999,999-11 of 12" (or,
    on the index, showed an empty table with no way back, or refused a long number as
    "not a whole number")."""
    base, _, s, _ = site
    status, _, body = get(base, target.format(**attrs_of(s)))
    page = body.decode()
    assert status == 200, page[:300]
    assert says in page
    pagers = re.findall(r'<p class="pager">(.*?)</p>', page)
    assert pagers and all(says in p and 'class="first"' in p and 'class="last"' in p
                          for p in pagers), pagers
    assert "-11 of" not in page and "-4 of" not in page and "-0 of" not in page
    if target.startswith("/compare"):  # the changed frames are still listed
        assert page.count('<li data-seq="') == len(CHANGED)


def test_a_frame_number_past_the_end_shows_the_last_frame(site: Any) -> None:
    base, _, s, _ = site
    for i in ("12", "99999999999999999999"):
        status, _, body = get(base, f"/t/{s.timeline}?i={i}")
        page = body.decode()
        assert status == 200
        assert 'id="viewer"' in page and 'data-pos="11" data-seq="11"' in page
        assert page.count('class="thumb') == 12  # the strip of the page that frame is on
    assert get(base, f"/t/{s.timeline}?i=-1")[0] == 400


def test_captions_count_one_box_and_name_each_change(tmp_path: Any) -> None:
    """"1 boxes" in captions; "+1" and "-1" in the list of changed frames, which left a
    reader to guess what was counted."""
    store = localckpt.open(str(tmp_path / "one"), create=True)
    tl = store.create_timeline("v.mp4", "p", np.zeros((2, 36, 64, 3), np.uint8), fps=2.0)
    box = {"box": [4, 4, 20, 20], "label": "ball", "score": 0.9}
    far = {"box": [40, 10, 60, 30], "label": "ball", "score": 0.8}
    a = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [box]}, {"sequence": 1, "detections": [box, far]}]})
    b = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [box, far]}, {"sequence": 1, "detections": [box]}]})
    with serving(store) as (base, _):
        one = get(base, f"/c/{a}")[2].decode()
        both = get(base, f"/compare?a={a}&b={b}")[2].decode()
    assert "1 boxes" not in one and "1 boxes" not in both
    assert "#0 · 0.00 s · 1 box</figcaption>" in one
    assert "#1 · 0.50 s · 2 boxes</figcaption>" in one
    assert "A · 1 box · frame #0" in both and "B · 2 boxes · frame #0" in both
    assert '<li data-seq="0"><a href="#f0">frame 0</a> <span>+1 added</span>' in both
    assert '<li data-seq="1"><a href="#f1">frame 1</a> <span>-1 removed</span>' in both
    store.close()


def test_a_checkpoint_page_names_its_video_its_open_runs_and_its_tries(tmp_path: Any) -> None:
    """What a reader could not find out on a checkpoint page: which video it is of (the
    timeline was a short id only), that a stage run is under way below it (the tree drew
    it, the page said "children: none"), and where its tries are ranked."""
    store = localckpt.open(str(tmp_path / "ck"), create=True)
    tl = store.create_timeline("match-final.mp4", "p", np.zeros((4, 36, 64, 3), np.uint8),
                               fps=2.0)
    out = {"frames": [{"sequence": s, "detections": []} for s in range(4)]}
    detect = store.save_stage_output(tl.id, None, "detect", out)
    labels = store.save_stage_output(tl.id, None, "labels", out)
    run = store.begin_run(tl.id, detect, "classify", version="v1")
    run.put({0: {"n": 0}, 1: {"n": 1}})
    with serving(store) as (base, _):
        page = get(base, f"/c/{detect}")[2].decode()
        truth = get(base, f"/c/{labels}")[2].decode()
        root = get(base, f"/c/{tl.root_checkpoint_id}")[2].decode()
        assert get(base, f"/t/{tl.id}/tries?stage=detect")[0] == 200
        assert get(base, f"/t/{tl.id}/tries?against={labels}")[0] == 200
    assert '<span class="muted">match-final.mp4</span>' in page
    short = store.short_id(run.id, "run")
    assert page.count('<p class="runs" id="runs">') == 1
    assert f"<b>classify</b> <code>run {short}</code> pending 2/4" in page
    assert f'href="/t/{tl.id}/tries?stage=detect"' in page
    assert f'href="/t/{tl.id}/tries?against={labels}"' in truth
    assert 'id="runs"' not in truth and 'id="runs"' not in root
    assert "/tries?" not in root
    store.close()


def test_a_link_to_a_pruned_try_says_it_was_pruned(tmp_path: Any) -> None:
    """A bookmarked try that was pruned read "no checkpoint '...': give its id, short id,
    a unique prefix or a tag", as if the id were mistyped."""
    store = localckpt.open(str(tmp_path / "gone"), create=True)
    tl = store.create_timeline("v.mp4", "p", np.zeros((2, 36, 64, 3), np.uint8), fps=2.0)
    gone = store.save_stage_output(tl.id, None, "detect", {"x": 1}, is_scenario=True,
                                   scenario_label="thr=0.9")
    below = store.save_stage_output(tl.id, gone, "track", {"y": 1})
    other = store.create_timeline("w.mp4", "p", np.zeros((2, 36, 64, 3), np.uint8), fps=2.0)
    on_other = store.save_stage_output(other.id, None, "detect", {"x": 2})
    store.prune(gone)
    store.delete_timeline(other.id)
    with serving(store) as (base, _):
        pages = {target: get(base, target) for target in (
            f"/c/{gone}", f"/c/{below}", f"/api/checkpoints/{gone}", f"/c/{on_other}",
            f"/t/{other.id}", f"/t/{tl.id}/tries?against={gone}", "/c/0123456789abcdef")}
    texts = {t: body.decode() for t, (_, _, body) in pages.items()}
    assert {t: status for t, (status, _, _) in pages.items()} == dict.fromkeys(pages, 404)
    short = store.short_id(tl.id, "timeline")
    assert (f"checkpoint {gone} (detect, thr=0.9) was deleted: pruned from timeline {short}"
            in texts[f"/c/{gone}"])
    assert f"/t/{tl.id}" in texts[f"/c/{gone}"]
    assert f"checkpoint {below} (track) was deleted: pruned" in texts[f"/c/{below}"]
    assert "was deleted: pruned" in json.loads(texts[f"/api/checkpoints/{gone}"])["message"]
    assert f"was deleted with its timeline {other.id}" in texts[f"/c/{on_other}"]
    assert f"timeline {other.id} was deleted" in texts[f"/t/{other.id}"]
    assert "was deleted: pruned" in texts[f"/t/{tl.id}/tries?against={gone}"]
    assert "no live checkpoint has that id" in texts["/c/0123456789abcdef"]  # never existed
    store.close()


def test_a_pruned_trys_404_links_to_the_tree_it_was_pruned_from(tmp_path: Any) -> None:
    """The 404 of a pruned try gave the timeline's address as plain text ("its tree is
    at /t/..."), to be copied by hand; the page now offers it as a link, the JSON too."""
    store = localckpt.open(str(tmp_path / "gone"), create=True)
    tl = store.create_timeline("v.mp4", "p", np.zeros((2, 36, 64, 3), np.uint8), fps=2.0)
    gone = store.save_stage_output(tl.id, None, "detect", {"x": 1})
    store.prune(gone)
    with serving(store) as (base, _):
        status, _, body = get(base, f"/c/{gone}")
        api_status, _, api = get(base, f"/api/checkpoints/{gone}")
    page = body.decode()
    short = store.short_id(tl.id, "timeline")
    assert (status, api_status) == (404, 404)
    assert page.count(f'<a href="/t/{tl.id}">the tree of timeline {short}, without it</a>') == 1
    assert f"/t/{tl.id}" not in re.sub(r"<a href=[^>]*>", "", page)  # no address as text
    assert json.loads(api)["links"] == [
        {"href": f"/t/{tl.id}", "text": f"the tree of timeline {short}, without it"}]
    store.close()


def _selected(page: str, name: str) -> list[str]:
    """The values of the selected options of the select called name."""
    found = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert found, name
    return re.findall(r'<option value="([^"]*)" selected>', found.group(1))


def test_the_tries_form_shows_the_stage_asked_for_when_none_has_it(site: Any) -> None:
    """?stage=<unknown> said "no checkpoint added stage <unknown>" while its dropdown had
    nothing selected, so the browser showed the first stage: the form and the message
    disagreed. The asked stage is now the one selected, as the message names it."""
    base, _, s, _ = site
    for asked, message in (("segment", "added stage segment besides"),
                           ("detect", "Choose a reference above")):
        status, _, body = get(base, f"/t/{s.timeline}/tries?stage={asked}")
        page = body.decode()
        assert status == 200 and message in page, asked
        assert _selected(page, "stage") == [asked], asked
    page = get(base, f"/t/{s.timeline}/tries?stage=segment")[2].decode()
    assert page.count('<option value="segment"') == 1  # once, even asked for


def test_the_viewer_of_a_checkpoint_without_a_stage_shows_its_first_stage(site: Any) -> None:
    """/view/X?c=ID without stage= was a 404 "no stage ''": it now shows the stage the
    checkpoint's page opens with (its first stage with detections)."""
    base, _, s, _ = site
    status, _, body = get(base, f"/view/{s.timeline}?c={s.mot}&i=3")
    page = body.decode()
    assert status == 200, page
    assert f'data-src="/view/{s.timeline}?c={s.mot}&amp;stage=detect"' in page
    assert page.count('class="box') == len(ball_boxes(3))
    same = get(base, f"/view/{s.timeline}?c={s.mot}&stage=detect&i=3")[2].decode()
    assert page == same
    status, _, body = get(base, f"/view/{s.timeline}?c={s.track}&stage=")
    assert status == 200  # the track checkpoint still carries try 1's detect output
    status, _, body = get(base, f"/view/{s.timeline}?c={s.root}")
    assert status == 404 and "has no stage with detections to draw" in body.decode()


def test_the_timeline_page_offers_to_rank_tries_only_when_a_stage_has_two(
        tmp_path: Any) -> None:
    """The link led to a page saying there was nothing to rank; the page read the tree
    anyway, so it counts the tries of each stage and says so instead."""
    store = localckpt.open(str(tmp_path / "tr"), create=True)
    tl = store.create_timeline("v.mp4", "p", np.zeros((2, 36, 64, 3), np.uint8), fps=2.0)
    out = {"frames": [{"sequence": s, "detections": []} for s in range(2)]}
    first = store.save_stage_output(tl.id, None, "detect", out)
    store.save_stage_output(tl.id, first, "track", out)
    with serving(store) as (base, _):
        one = get(base, f"/t/{tl.id}")[2].decode()
        store.save_stage_output(tl.id, None, "detect", out, config_overrides={"thr": 0.9})
        two = get(base, f"/t/{tl.id}")[2].decode()
    assert "no stage has two tries to rank yet" in one and f"/t/{tl.id}/tries" not in one
    assert f'href="/t/{tl.id}/tries"' in two and "no stage has two" not in two
    store.close()

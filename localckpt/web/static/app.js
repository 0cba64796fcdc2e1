// localckpt web view. Everything here improves pages that already work without it:
// - the tree: click two nodes to fill the compare form (first A, then B);
// - the viewer: arrow keys, Home/End, the slider, the strip's thumbnails and the frames
//   below step it without reloading the page (the server renders each step: /view/...);
// - labels: a checkbox per label hides or shows its boxes, on every frame shown.
(function () {
  "use strict";

  // -- the tree: scrolled to the first search match; picking two checkpoints -------------
  var form = document.querySelector("form.compare");
  var tree = document.querySelector("svg.tree");
  var hit = tree && tree.querySelector("g.node.hit");
  var wrap = document.getElementById("tree");
  if (hit && wrap) {
    var r = hit.getBoundingClientRect();
    var w = wrap.getBoundingClientRect();
    wrap.scrollTop += r.top - w.top - 40;
    wrap.scrollLeft += r.left - w.left - 40;
  }
  if (form && tree) {
    var pickA = document.getElementById("pick-a");
    var pickB = document.getElementById("pick-b");
    var next = "a";
    var names = function (g) {
      return [g.getAttribute("data-id"), g.getAttribute("data-short")];
    };
    var mark = function () {
      tree.querySelectorAll("g.node").forEach(function (g) {
        var n = names(g);
        var isA = n.indexOf(pickA.value) >= 0;
        g.classList.toggle("picked-a", isA);
        g.classList.toggle("picked-b", !isA && n.indexOf(pickB.value) >= 0);
      });
    };
    tree.addEventListener("click", function (event) {
      if (event.target.closest("a")) { return; }  // links open the checkpoint or a subtree
      var node = event.target.closest("g.node");
      if (!node) { return; }
      var id = node.getAttribute("data-short") || node.getAttribute("data-id");
      if (next === "a") { pickA.value = id; next = "b"; } else { pickB.value = id; next = "a"; }
      mark();
    });
    pickA.addEventListener("input", mark);
    pickB.addEventListener("input", mark);
    mark();
  }

  // -- labels shown or hidden -------------------------------------------------------------
  var hidden = {};
  function applyLabels(root) {
    root.querySelectorAll("g.box[data-label]").forEach(function (g) {
      g.classList.toggle("off", hidden[g.getAttribute("data-label")] === true);
    });
  }
  document.querySelectorAll("#labels input[data-label]").forEach(function (box) {
    box.addEventListener("change", function () {
      hidden[box.getAttribute("data-label")] = !box.checked;
      applyLabels(document);
    });
  });

  // -- the viewer -------------------------------------------------------------------------
  var viewer = document.getElementById("viewer");
  if (!viewer || !viewer.getAttribute("data-src")) { return; }
  var asked = 0;
  var wanted = null;  // the position asked for and not shown yet
  var slider = null;
  var timer = null;

  function position() { return parseInt(viewer.getAttribute("data-pos"), 10) || 0; }
  function count() { return parseInt(viewer.getAttribute("data-count"), 10) || 0; }

  function show(pos) {
    if (pos < 0 || pos >= count() || (pos === position() && wanted === null)) { return; }
    var src = viewer.getAttribute("data-src");
    var ticket = ++asked;
    wanted = pos;
    fetch(src + (src.indexOf("?") < 0 ? "?" : "&") + "i=" + pos, {credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { throw new Error("frame " + pos + ": HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (ticket !== asked) { return; }  // a later step was asked for meanwhile
        wanted = null;
        var t = document.createElement("template");
        t.innerHTML = html;
        var fresh = t.content.querySelector("#viewer");
        if (!fresh) { return; }
        viewer.replaceWith(fresh);
        viewer = fresh;
        wire();
        applyLabels(viewer);
        document.querySelectorAll(".strip a.thumb").forEach(function (a) {
          a.classList.toggle("on", a.getAttribute("data-pos") === String(pos));
        });
        var url = new URL(window.location.href);
        url.searchParams.set("i", String(pos));
        window.history.replaceState(null, "", url.pathname + url.search + url.hash);
      })
      .catch(function (err) {
        if (ticket === asked) { wanted = null; }
        viewer.setAttribute("data-error", String(err));
      });
  }

  function wire() {
    slider = viewer.querySelector("#scrub");
    if (slider) {
      slider.addEventListener("input", function () {
        window.clearTimeout(timer);
        var to = parseInt(slider.value, 10);
        timer = window.setTimeout(function () { show(to); }, 40);
      });
    }
  }
  wire();

  document.addEventListener("click", function (event) {
    var target = event.target.closest(".viewer a[data-pos], .strip a.thumb, figure.pick");
    if (!target || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    show(parseInt(target.getAttribute("data-pos"), 10));
    if (target.matches("figure.pick")) { viewer.scrollIntoView({block: "nearest"}); }
  });

  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(t.tagName))) {
      return;  // typing, or the slider's own arrow keys
    }
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var steps = {ArrowLeft: -1, ArrowRight: 1};
    var to = null;
    var from = wanted === null ? position() : wanted;
    if (event.key in steps) { to = from + steps[event.key]; }
    else if (event.key === "Home") { to = 0; }
    else if (event.key === "End") { to = count() - 1; }
    if (to === null) { return; }
    event.preventDefault();
    show(Math.max(0, Math.min(to, count() - 1)));
  });
}());

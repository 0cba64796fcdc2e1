// localckpt web view: the side-by-side frame view. The slider, the buttons and the arrow
// keys move every pane to the same frame; the panes of that frame come from the server
// (/t/{timeline}/side/panes), drawn by the same code as the first ones.
(function () {
  "use strict";
  var scrub = document.getElementById("scrub");
  if (!scrub) { return; }
  var slider = document.getElementById("slider");
  var where = document.getElementById("where");
  var seqs = scrub.getAttribute("data-seqs").split(",").map(Number);
  var times = scrub.getAttribute("data-times").split(",").map(Number);
  var base = "/t/" + encodeURIComponent(scrub.getAttribute("data-timeline")) + "/side";
  var ids = scrub.getAttribute("data-ids");
  var stage = scrub.getAttribute("data-stage");
  var asked = 0;  // the newest request wins: slow answers for frames passed over are dropped

  function query(seq) {
    var q = "?c=" + encodeURIComponent(ids) + "&seq=" + seq;
    return stage ? q + "&stage=" + encodeURIComponent(stage) : q;
  }

  function show(position) {
    var seq = seqs[position];
    where.textContent = "frame " + seq + " · " + times[position].toFixed(2) + " s";
    history.replaceState(null, "", base + query(seq));
    var mine = ++asked;
    fetch(base + "/panes" + query(seq), {credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { throw new Error("frame " + seq + ": HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (mine !== asked) { return; }
        var panes = document.getElementById("panes");
        var holder = document.createElement("div");
        holder.innerHTML = html;  // server-rendered, escaped markup (no script can run: CSP)
        panes.replaceWith(holder.firstElementChild);
      })
      .catch(function (err) { where.textContent = String(err.message || err); });
  }

  function step(by) {
    var next = Math.min(Math.max(Number(slider.value) + by, 0), seqs.length - 1);
    if (next !== Number(slider.value)) {
      slider.value = String(next);
      show(next);
    }
  }

  slider.addEventListener("input", function () { show(Number(slider.value)); });
  document.getElementById("prev").addEventListener("click", function () { step(-1); });
  document.getElementById("next").addEventListener("click", function () { step(1); });
  document.addEventListener("keydown", function (event) {
    if (event.target === slider || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
  });
}());

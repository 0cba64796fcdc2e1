// localckpt web view: pick two checkpoints on the tree (first click A, second B).
// Works on top of the compare form, which also works without this script.
(function () {
  "use strict";
  var form = document.querySelector("form.compare");
  var tree = document.querySelector("svg.tree");
  if (!form || !tree) { return; }
  var pickA = document.getElementById("pick-a");
  var pickB = document.getElementById("pick-b");
  var next = "a";

  function mark() {
    tree.querySelectorAll("g.node").forEach(function (g) {
      var id = g.getAttribute("data-id");
      g.classList.toggle("picked-a", id === pickA.value);
      g.classList.toggle("picked-b", id === pickB.value && id !== pickA.value);
    });
  }

  tree.addEventListener("click", function (event) {
    if (event.target.closest("a")) { return; }  // the stage name and id open the checkpoint
    var node = event.target.closest("g.node");
    if (!node) { return; }
    var id = node.getAttribute("data-id");
    if (next === "a") { pickA.value = id; next = "b"; } else { pickB.value = id; next = "a"; }
    mark();
  });
  pickA.addEventListener("change", mark);
  pickB.addEventListener("change", mark);
  mark();
}());

// Progressive enhancements only: every page works without this file.
// 1. <time> elements show the viewer's local time (the UTC value stays on hover).
// 2. A request's progress (#progress[data-poll]) refreshes itself until it settles, with
//    the actions of its new state (the Extend form once approved; a reload does the same).
"use strict";

function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (node) {
    var at = new Date(node.getAttribute("datetime"));
    if (!isNaN(at)) {
      node.textContent = at.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "medium"});
    }
  });
}

function poll() {
  var box = document.querySelector("#progress[data-poll]");
  if (!box) { return; }
  // Someone typing in one of the part's forms keeps it until they leave it.
  if (box.contains(document.activeElement)) { setTimeout(poll, 2000); return; }
  fetch(box.getAttribute("data-poll"), {credentials: "same-origin"})
    .then(function (answer) { return answer.ok ? answer.text() : null; })
    .then(function (html) {
      if (html === null) { return; }
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = holder.querySelector("#progress");
      if (fresh) { box.replaceWith(fresh); localTimes(fresh); }
    })
    .finally(function () { setTimeout(poll, 2000); });
}

document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  setTimeout(poll, 2000);
});

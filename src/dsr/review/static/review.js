// dsr review: keyboard shortcuts and the clip player. Plain script, no build step; pages work without it.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function submit(form, button) {
    if (!form || form.dataset.sent) { return; }
    form.dataset.sent = "1";  // one key press, one decision
    if (button && form.requestSubmit) { form.requestSubmit(button); } else { form.submit(); }
  }

  function openPanel(id, focusId) {
    ["edit-panel", "reject-panel", "flag-panel"].forEach(function (other) {
      var el = $(other);
      if (el) { el.open = other === id; }
    });
    var focus = $(focusId);
    if (focus) { focus.focus(); if (focus.select && focus.tagName !== "SELECT") { focus.select(); } }
  }

  function closePanels() {
    ["edit-panel", "reject-panel", "flag-panel"].forEach(function (id) { var el = $(id); if (el) { el.open = false; } });
    if (document.activeElement) { document.activeElement.blur(); }
  }

  function setupClip() {
    var video = $("clip");
    if (!video) { return; }
    var start = parseFloat(video.dataset.start) || 0;
    var end = parseFloat(video.dataset.end);
    function toStart() { try { video.currentTime = start; } catch (e) { /* not seekable yet */ } }
    video.addEventListener("loadedmetadata", toStart);
    video.addEventListener("timeupdate", function () {
      if (!isNaN(end) && end > start && video.currentTime >= end) { video.pause(); }
    });
    video.addEventListener("play", function () {
      if (!isNaN(end) && (video.currentTime >= end - 0.01 || video.currentTime < start - 0.05)) { toStart(); }
    });
    video.addEventListener("error", function () {
      video.classList.add("hidden");
      var note = $("video-fallback");
      if (note) { note.classList.remove("hidden"); }
      document.body.dataset.video = "fallback";
    });
    video.addEventListener("canplay", function () { document.body.dataset.video = "ready"; });
    var strip = $("strip");
    if (strip) {
      strip.addEventListener("click", function (ev) {
        var fig = ev.target.closest("figure");
        if (fig && fig.dataset.time) { video.currentTime = parseFloat(fig.dataset.time); }
      });
    }
    return function replay() { toStart(); video.play().catch(function () { /* autoplay may be refused */ }); };
  }

  function setupItem() {
    var item = $("item");
    if (!item) { return; }
    var replay = setupClip();
    var letters = (item.dataset.letters || "").split("");
    var generator = item.dataset.generator;
    var reasonSelect = $("reject-reason");

    document.addEventListener("keydown", function (ev) {
      var rejectOpen = $("reject-panel") && $("reject-panel").open;
      if (ev.key === "Escape") { closePanels(); return; }
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        var form = ev.target.closest && ev.target.closest("form");
        if (form) { ev.preventDefault(); submit(form); }
        return;
      }
      if (rejectOpen && (ev.target === reasonSelect || !typing(ev.target))) {
        if (/^[1-9]$/.test(ev.key) && reasonSelect && reasonSelect.options.length >= +ev.key) {
          ev.preventDefault();
          reasonSelect.selectedIndex = +ev.key - 1;
          return;
        }
        if (ev.key === "Enter") { ev.preventDefault(); submit($("f-reject")); return; }
      }
      if (typing(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      var key = ev.key;
      if (key === "a") { ev.preventDefault(); submit($("f-accept")); }
      else if (/^[1-9]$/.test(key) && +key <= letters.length) {
        ev.preventDefault();
        var letter = letters[+key - 1];
        if (letter === generator) { submit($("f-accept")); } else { submit($("f-change"), $("btn-answer-" + letter)); }
      }
      else if (key === "e") { ev.preventDefault(); openPanel("edit-panel", "edit-question"); }
      else if (key === "r") { ev.preventDefault(); openPanel("reject-panel", "reject-reason"); }
      else if (key === "f") { ev.preventDefault(); openPanel("flag-panel", "flag-note"); }
      else if (key === "j" || key === "n") { if (item.dataset.next) { window.location.href = item.dataset.next; } }
      else if (key === "k" || key === "p") { if (item.dataset.prev) { window.location.href = item.dataset.prev; } }
      else if (key === "v" && replay) { ev.preventDefault(); replay(); }
      else if (key === "q") { window.location.href = item.dataset.queue; }
    });
    document.body.dataset.keys = "ready";
  }

  function setupQueue() {
    document.addEventListener("keydown", function (ev) {
      if (typing(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      if (ev.key === "Enter" || ev.key === "j") {
        var start = $("start-review");
        if (start) { ev.preventDefault(); window.location.href = start.href; }
      }
    });
    document.body.dataset.keys = "ready";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    if (page === "item") { setupItem(); } else if (page === "queue") { setupQueue(); }
  });
})();

// The import page's progress bar: polls the batch's progress until it is finished, then reloads.
(function () {
  var box = document.getElementById("import-status");
  if (!box || box.dataset.finished === "1") return;
  function poll() {
    fetch(box.dataset.progressUrl, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (p) {
      if (p.finished) { window.location.reload(); return; }
      document.getElementById("status-text").textContent = p.status_display;
      document.getElementById("progress-text").textContent = p.progress + " / " + p.total + " rows";
      var bar = document.getElementById("progress-bar");
      if (bar) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
      setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();

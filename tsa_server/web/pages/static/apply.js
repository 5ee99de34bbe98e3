// The deposit page (pages/templates/apply.html): hashes every chosen file, or every file
// of the chosen folder, in the browser (hashing.js, 4 MiB slices, one progress bar for
// the whole batch), puts [{sha256, size, file_name}] into the form's "items" field and
// sends the form. The file inputs have no name: no file byte leaves the browser.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("apply-form");
    if (!form) { return; }
    var progress = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    var error = document.getElementById("apply-error");
    var max = parseInt(form.getAttribute("data-max"), 10) || 100;
    var busy = false;

    function chosen() {
      var files = [];
      ["files", "folder"].forEach(function (id) {
        var input = document.getElementById(id);
        if (input && input.files) {
          for (var i = 0; i < input.files.length; i++) { files.push(input.files[i]); }
        }
      });
      return files;
    }

    function fail(message) {
      busy = false;
      error.textContent = message;
      error.hidden = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      var files = chosen();
      if (files.length === 0) { fail(form.getAttribute("data-none")); return; }
      if (files.length > max) { fail(form.getAttribute("data-too-many")); return; }
      busy = true;
      error.hidden = true;
      progress.hidden = false;
      var total = 0, done = 0, items = [];
      files.forEach(function (f) { total += f.size; });
      function step(i) {
        if (i >= files.length) {
          progress.value = 100;
          document.getElementById("items").value = JSON.stringify(items);
          form.submit();
          return;
        }
        var file = files[i];
        var name = (file.webkitRelativePath || file.name).slice(0, 255);
        text.textContent = (i + 1) + " / " + files.length + ": " + name;
        var watch = { set value(v) {
          var part = file.size * v / 100;
          progress.value = total ? (100 * (done + part)) / total : 100;
        }, get value() { return progress.value; } };
        window.tsaHashFile(file, watch, null).then(function (digest) {
          done += file.size;
          items.push({ sha256: digest, size: file.size, file_name: name });
          step(i + 1);
        }, function () { fail(form.getAttribute("data-unreadable") + " " + name); });
      }
      step(0);
    });
  });
})();

// Hashes the chosen file in the browser with the vendored js-sha256 (MIT, see
// js-sha256-LICENSE.txt), 4 MiB at a time, so a large file is never held whole; the
// digest goes into the form's digest field and the file itself is never sent (its
// input has no name). Used by the verification center (pages/templates/check.html);
// apply.js uses its hashFile (window.tsaHashFile) for the deposit page.
"use strict";
(function () {
  var SLICE = 4 * 1024 * 1024;

  function hashFile(file, progress, text) {
    return new Promise(function (resolve, reject) {
      var hash = sha256.create();
      var offset = 0;
      var reader = new FileReader();
      reader.onerror = function () { reject(reader.error); };
      reader.onload = function () {
        hash.update(reader.result);
        offset += SLICE;
        var done = Math.min(offset, file.size);
        if (progress) { progress.value = file.size ? (100 * done) / file.size : 100; }
        if (text) { text.textContent = Math.round(progress ? progress.value : 100) + " %"; }
        if (offset < file.size) { next(); } else { resolve(hash.hex()); }
      };
      function next() { reader.readAsArrayBuffer(file.slice(offset, offset + SLICE)); }
      next();
    });
  }

  window.tsaHashFile = hashFile;

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-hash-into]");
    if (!form) { return; }
    var source = form.querySelector("input[data-hash-source]");
    var target = form.querySelector("#" + form.getAttribute("data-hash-into"));
    var progress = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    var hashing = false;
    form.addEventListener("submit", function (event) {
      if (!source || !source.files || source.files.length === 0) { return; }
      event.preventDefault();
      if (hashing) { return; }
      hashing = true;
      if (progress) { progress.hidden = false; }
      hashFile(source.files[0], progress, text).then(function (digest) {
        target.value = digest;
        form.submit();
      }, function () {
        hashing = false;
        if (text) { text.textContent = "!"; }
      });
    });
  });
})();

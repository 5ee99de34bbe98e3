// The stored-deposit page (pages/templates/apply_stored.html): hashes the chosen files
// in the browser (hashing.js), asks POST /apply/precheck for the credits, the balance
// and the files already certified, then, once confirmed, uploads the same body as
// POST /api/v1/deposits/upload (a metadata part, then the files) to /apply/upload with
// a progress bar and a cancel button (the request is aborted: nothing is stored).
// Every text it shows comes from the page (data-* attributes) or is set as text.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("stored-form");
    if (!form) { return; }
    var $ = function (id) { return document.getElementById(id); };
    var progress = $("progress"), text = $("progress-text"), message = $("stored-message");
    var review = $("stored-review"), cancel = $("cancel-button"), send = $("upload-button");
    var csrf = form.getAttribute("data-csrf");
    var files = [], items = [], fields = {}, busy = false, xhr = null;

    function say(words, bad) {
      message.textContent = words;
      message.className = "notice " + (bad ? "bad" : "good");
      message.hidden = false;
    }

    function chosen() {
      var out = [];
      ["files", "folder"].forEach(function (id) {
        var input = $(id);
        for (var i = 0; input && input.files && i < input.files.length; i++) { out.push(input.files[i]); }
      });
      return out;
    }

    function post(url, body, done) {
      fetch(url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }
      }).then(function (reply) { return reply.json(); }).then(done, function (e) { say(String(e), true); busy = false; });
    }

    function hashAll(i, done, total, sum) {
      if (i >= files.length) { done(); return; }
      var file = files[i];
      var name = (file.webkitRelativePath || file.name).slice(0, 255);
      text.textContent = (i + 1) + " / " + files.length + ": " + name;
      var watch = { set value(v) { progress.value = total ? 100 * (sum + file.size * v / 100) / total : 100; },
                    get value() { return progress.value; } };
      window.tsaHashFile(file, watch, null).then(function (digest) {
        items.push({ sha256: digest, size: file.size, file_name: name });
        hashAll(i + 1, done, total, sum + file.size);
      }, function () { say(form.getAttribute("data-unreadable") + " " + name, true); busy = false; });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      files = chosen(); items = []; review.hidden = true; message.hidden = true;
      var max = parseInt(form.getAttribute("data-max"), 10), maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
      if (files.length === 0) { say(form.getAttribute("data-none"), true); return; }
      if (files.length > max) { say(form.getAttribute("data-too-many"), true); return; }
      var total = 0;
      for (var i = 0; i < files.length; i++) {
        if (files[i].size > maxBytes) { say(form.getAttribute("data-too-large") + " " + files[i].name, true); return; }
        total += files[i].size;
      }
      fields = {};
      ["depositor", "work_content", "work_title", "statement"].forEach(function (id) {
        if ($(id).value.trim()) { fields[id] = $(id).value.trim(); }
      });
      busy = true; progress.hidden = false; progress.value = 0;
      hashAll(0, function () {
        var body = Object.assign({ items: items }, fields);
        post("/apply/precheck", body, function (answer) {
          busy = false;
          if (answer.error && answer.units === undefined) {
            var why = answer.error;
            if (answer.fields) { why += ": " + Object.keys(answer.fields).map(function (k) { return k + " " + answer.fields[k]; }).join("; "); }
            say(why, true); return;
          }
          $("stored-summary").textContent = answer.summary;
          var list = $("stored-already");
          list.textContent = "";
          answer.already.forEach(function (earlier, i) {
            if (!earlier.length) { return; }
            var li = document.createElement("li");
            li.textContent = items[i].file_name + ": " + form.getAttribute("data-already").replace("%(when)s", earlier[0].at);
            list.appendChild(li);
          });
          review.hidden = false;
          send.hidden = !answer.enough;
          if (!answer.enough) { say(answer.error, true); }
        });
      }, total, 0);
    });

    send.addEventListener("click", function () {
      if (busy) { return; }
      busy = true;
      var metadata = Object.assign({ items: items.map(function (it) { return { sha256: it.sha256, file_name: it.file_name }; }) }, fields);
      var data = new FormData();
      data.append("metadata", new Blob([JSON.stringify(metadata)], { type: "application/json" }));
      files.forEach(function (file) { data.append("file", file, file.name); });
      xhr = new XMLHttpRequest();
      xhr.open("POST", "/apply/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Idempotency-Key", "page-" + Date.now() + "-" + Math.random().toString(36).slice(2));
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) { progress.value = 100 * e.loaded / e.total; text.textContent = Math.round(progress.value) + " %"; }
      };
      xhr.onload = function () {
        busy = false; cancel.hidden = true; send.hidden = true;
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = { error: xhr.statusText }; }
        if (xhr.status !== 201) { say(form.getAttribute("data-failed") + " " + (answer.error || xhr.status), true); send.hidden = false; return; }
        say(form.getAttribute("data-done") + " " + answer.items.length, false);
        var list = $("stored-results");
        answer.items.forEach(function (it) {
          var li = document.createElement("li"), a = document.createElement("a");
          a.href = "/files/" + encodeURIComponent(it.id);
          a.textContent = it.file_name || it.sha256.slice(0, 16);
          li.appendChild(a);
          li.appendChild(document.createTextNode(" · " + it.serial));
          list.appendChild(li);
        });
      };
      xhr.onerror = function () { busy = false; cancel.hidden = true; say(form.getAttribute("data-failed"), true); };
      xhr.onabort = function () { busy = false; cancel.hidden = true; progress.value = 0; text.textContent = ""; say(form.getAttribute("data-cancelled"), true); };
      cancel.hidden = false;
      progress.value = 0;
      xhr.send(data);
    });

    cancel.addEventListener("click", function () { if (xhr) { xhr.abort(); } });
  });
})();

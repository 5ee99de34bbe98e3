// The trade-name page's live check (pages/templates/name.html): while the handle (or
// the shop name) is typed, asks GET /name/check, the registry's own check, and shows
// its GBK byte count and, when refused, why. Without script the form does the same
// as a page reload.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("name-form");
    if (!form) { return; }
    var handle = document.getElementById("handle");
    var shop = document.getElementById("shop_name");
    var bytes = document.getElementById("handle-bytes");
    var verdict = document.getElementById("handle-verdict");
    var timer = null, asked = 0;

    function show(answer) {
      bytes.textContent = answer.counted || "";
      verdict.textContent = answer.message || answer.error || "";
      verdict.className = "notice " + (answer.valid ? "good" : "bad");
      verdict.hidden = false;
    }

    function ask() {
      var text = handle.value;
      if (!text) { bytes.textContent = ""; verdict.hidden = true; return; }
      var mine = ++asked;
      var url = "/name/check?handle=" + encodeURIComponent(text);
      if (shop.value) { url += "&shop_name=" + encodeURIComponent(shop.value); }
      fetch(url, { credentials: "same-origin" }).then(function (reply) {
        return reply.json();
      }).then(function (answer) {
        if (mine === asked) { show(answer); }
      }, function () {});
    }

    function later() {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(ask, 120);
    }
    handle.addEventListener("input", later);
    shop.addEventListener("input", later);
  });
})();

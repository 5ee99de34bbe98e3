// The verification center's choice (pages/templates/check.html): a file and its .tsr,
// a certificate PDF or an evidence kit ZIP. Without this script every form is shown;
// with it, a radio group (arrow keys move between the choices) shows one at a time.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var choice = document.getElementById("check-choice");
    if (!choice) { return; }
    var radios = choice.querySelectorAll("input[name='check-kind']");
    var panels = document.querySelectorAll("[data-check-panel]");
    function show(kind) {
      for (var i = 0; i < panels.length; i++) {
        panels[i].hidden = panels[i].getAttribute("data-check-panel") !== kind;
      }
    }
    for (var i = 0; i < radios.length; i++) {
      radios[i].addEventListener("change", function (event) { show(event.target.value); });
    }
    var wanted = (window.location.hash || "").replace("#", "");
    for (var j = 0; j < radios.length; j++) {
      if (radios[j].value === wanted) { radios[j].checked = true; }
    }
    var checked = choice.querySelector("input[name='check-kind']:checked");
    choice.hidden = false;
    show(checked ? checked.value : "token");
  });
})();

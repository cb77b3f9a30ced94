// Progressive enhancement only: shows a "Copy" button next to each pull command. The pages work without it.
"use strict";
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var target = document.getElementById(button.getAttribute("data-copy"));
  if (!target || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(target.textContent.trim()).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Select and copy"; }
    );
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  });
});

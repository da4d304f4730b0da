// Leaderboard filters: nothing happens on a change (a keyboard user moving through a select must
// not reload the page, WCAG 3.2.2); "apply" (or Enter) submits, leaving defaults out of the URL.
// (The form works without this script too.)
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("filters");
  if (!form) return;
  form.addEventListener("submit", function () {
    form.querySelectorAll("select, input[type=search]").forEach(function (el) {
      el.disabled = el.value === "" || (el.name === "status" && el.value === "ranked");
    });
  });
});
// coming back to the page (history), the fields disabled above are usable again
window.addEventListener("pageshow", function () {
  var form = document.getElementById("filters");
  if (!form) return;
  form.querySelectorAll("select, input[type=search]").forEach(function (el) { el.disabled = false; });
});

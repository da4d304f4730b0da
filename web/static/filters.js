// Apply leaderboard filters as soon as a select changes, leaving defaults out of the URL.
// (The form also works without this script, with a button.)
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("filters");
  if (!form) return;
  var selects = form.querySelectorAll("select");
  function submit() {
    selects.forEach(function (el) {
      el.disabled = el.value === "" || (el.name === "status" && el.value === "ranked");
    });
    form.submit();
  }
  selects.forEach(function (el) { el.addEventListener("change", submit); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
});

// Apply leaderboard filters as soon as a select changes (the form also works without this script).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("filters");
  if (!form) return;
  form.querySelectorAll("select").forEach(function (el) {
    el.addEventListener("change", function () { form.submit(); });
  });
});

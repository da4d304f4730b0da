// Live queue: poll the page's JSON twin and redraw the table. Text goes in with textContent only.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var table = document.getElementById("queue");
  if (!live || !table) return;
  var src = live.getAttribute("data-src");
  var interval = parseInt(live.getAttribute("data-interval-ms"), 10) || 3000;
  var known = ["running", "queued", "succeeded", "failed", "cancelled"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function moment(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  // Same formula as the server's progress_percent: finished runs plus the running one's step share.
  function percent(p) {
    var runs = p.runs || 1;
    var within = p.steps ? Math.min(1, (p.step || 0) / p.steps) : 0;
    return Math.max(0, Math.min(100, Math.round(100 * ((p.run_index || 0) + within) / runs)));
  }
  function progressCell(p) {
    var td = el("td", "progress-cell");
    if (!p) { td.textContent = "—"; return td; }
    var bar = el("progress");
    bar.max = 100;
    bar.value = percent(p);
    bar.title = bar.value + "%";
    td.appendChild(bar);
    var parts = ["run " + (p.run_index + 1) + "/" + p.runs];
    if (p.step !== null && p.step !== undefined && p.steps) parts.push("step " + p.step + "/" + p.steps);
    if (p.message) parts.push(p.message);
    td.appendChild(el("div", "small muted", parts.join(" · ")));
    return td;
  }
  function row(j) {
    var tr = el("tr");
    tr.setAttribute("data-job-id", j.id);
    tr.setAttribute("data-status", j.status);
    tr.appendChild(el("td", "num", "#" + j.id));
    var entry = el("td");
    var a = el("a", null, j.entry_title);
    a.href = "/entries/" + encodeURIComponent(j.entry_id);
    entry.appendChild(a);
    entry.appendChild(document.createTextNode(" "));
    entry.appendChild(el("span", "small muted", j.reason));
    tr.appendChild(entry);
    tr.appendChild(el("td", "wide", j.track));
    var state = el("td", "state");
    var badge = el("span", "badge badge-" + (known.indexOf(j.status) >= 0 ? j.status : "other"), j.status);
    badge.setAttribute("data-status", j.status);
    state.appendChild(badge);
    tr.appendChild(state);
    tr.appendChild(el("td", "num", j.attempts + " / " + j.max_attempts));
    tr.appendChild(progressCell(j.progress));
    tr.appendChild(el("td", "wide mono small", j.lease_owner || "—"));
    tr.appendChild(el("td", "wide small", moment(j.created_at)));
    tr.appendChild(el("td", "small", j.failure_reason || ""));
    return tr;
  }
  function drawCounts(counts) {
    var box = document.getElementById("counts");
    if (!box || !counts) return;
    box.textContent = "";
    known.forEach(function (state) {
      if (!counts[state]) return;
      var b = el("span", "badge badge-" + state, counts[state] + " " + state);
      b.setAttribute("data-state", state);
      box.appendChild(b);
      box.appendChild(document.createTextNode(" "));
    });
  }
  function draw(jobs) {
    var body = document.createElement("tbody");
    if (!jobs.length) {
      var tr = el("tr", "empty");
      var td = el("td", "muted", "The queue is empty.");
      td.colSpan = 9;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    jobs.forEach(function (j) { body.appendChild(row(j)); });
    table.replaceChild(body, table.tBodies[0]);
    live.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  }
  function poll() {
    if (document.hidden) { setTimeout(poll, interval); return; }  // no polling from a background tab
    fetch(src, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) { draw(data.jobs || []); drawCounts(data.counts); })
      .catch(function () { live.textContent = "offline; retrying"; })
      .then(function () { setTimeout(poll, interval); });
  }
  setTimeout(poll, interval);
})();

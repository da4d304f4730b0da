// Live queue: poll the page's JSON twin and redraw the table. Text goes in with textContent only.
// The words and numbers mirror web/pages/common.py job_view(), so a redraw never changes what a row says.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var table = document.getElementById("queue");
  if (!live || !table) return;
  var src = live.getAttribute("data-src");
  var interval = parseInt(live.getAttribute("data-interval-ms"), 10) || 3000;
  var known = ["running", "queued", "finished", "failed", "cancelled", "verified", "awaiting_review", "inconclusive", "error"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function badge(status, extraClass, text) {
    var b = el("span", "badge badge-" + (known.indexOf(status) >= 0 ? status : "other") + (extraClass ? " " + extraClass : ""), text || status);
    b.setAttribute(extraClass ? "data-verdict" : "data-status", status);
    return b;
  }
  function moment(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function hms(seconds) {
    var t = Math.round(Math.abs(seconds));
    return (seconds < 0 ? "-" : "") + Math.floor(t / 3600) + ":" + pad(Math.floor((t % 3600) / 60)) + ":" + pad(t % 60);
  }
  function minutes(seconds) {
    return seconds >= 36000 ? hms(seconds) : (Math.max(0, seconds) / 60).toFixed(1) + " min";
  }
  function pvalue(v) {  // submissions.stats.p_text: 3 significant digits, scientific below 0.001
    if (v === 0) return "0";
    if (v < 1e-3) return v.toExponential(1).replace(/e([+-])(\d)$/, "e$10$2");
    return String(parseFloat(v.toPrecision(3)));
  }
  function utc(iso) {
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function percent(p) {
    var runs = p.runs || 1;
    var within = p.steps ? Math.min(1, (p.step || 0) / p.steps) : 0;
    return Math.max(0, Math.min(100, Math.round(100 * ((p.run_index || 0) + within) / runs)));
  }
  function view(j) {
    var p = j.progress || {};
    var finished = ["succeeded", "failed", "cancelled"].indexOf(j.status) >= 0;
    var parts = [];
    var phase = j.phase || "";
    if (j.status === "running" && (j.progress || phase)) {
      parts.push(phase || "run " + ((p.run_index || 0) + 1) + "/" + (p.runs || j.runs));
      if (p.step !== null && p.step !== undefined && p.steps && phase.indexOf("scoring") !== 0) parts.push("step " + p.step + "/" + p.steps);
      if (j.eta_seconds !== null && j.eta_seconds !== undefined) parts.push("ETA " + minutes(j.eta_seconds) + " for all " + (p.runs || j.runs) + " runs");
      if (p.message && String(p.message).indexOf("run ") !== 0) parts.push(String(p.message));
    } else if (j.status === "queued" && j.position !== null && j.position !== undefined) {
      parts.push("#" + j.position + " in line on " + j.track);
      if (j.expected_start_at) parts.push("expected start " + utc(j.expected_start_at));
    } else if (finished && j.duration_seconds !== null && j.duration_seconds !== undefined) {
      parts.push((j.status === "succeeded" ? "took " : "stopped after ") + hms(j.duration_seconds));
    }
    var verdictText = null;
    if (j.verdict) {
      verdictText = j.verdict === "awaiting_review" ? "verified \u00b7 awaiting review" : j.verdict;
      if (j.verdict_p_value !== null && j.verdict_p_value !== undefined) verdictText += " (p = " + pvalue(j.verdict_p_value) + ")";
    }
    return {
      state: j.status === "succeeded" ? "finished" : j.status,
      percent: j.status === "succeeded" ? 100 : percent(p),
      bar: j.status === "running" || j.status === "succeeded",
      line: parts.join(" · "),
      verdictText: verdictText
    };
  }
  function row(j) {
    var v = view(j);
    var tr = el("tr");
    tr.setAttribute("data-job-id", j.id);
    tr.setAttribute("data-status", j.status);
    if (j.verdict) tr.setAttribute("data-verdict", j.verdict);
    tr.appendChild(el("td", "num", "#" + j.id));
    var entry = el("td");
    var a = el("a", null, j.entry_title);
    a.href = "/entries/" + encodeURIComponent(j.entry_id);
    entry.appendChild(a);
    entry.appendChild(document.createTextNode(" "));
    entry.appendChild(el("span", "small muted", j.reason));
    tr.appendChild(entry);
    var state = el("td", "state");
    state.appendChild(badge(v.state));
    if (j.verdict) {
      state.appendChild(document.createTextNode(" "));
      state.appendChild(badge(j.verdict, "verdict", v.verdictText));
    }
    tr.appendChild(state);
    var td = el("td", "progress-cell");
    if (v.bar) {
      var bar = el("progress");
      bar.max = 100;
      bar.value = v.percent;
      bar.setAttribute("aria-label", "job " + j.id + " progress");
      td.appendChild(bar);
      td.appendChild(document.createTextNode(" "));
      td.appendChild(el("span", "small", v.percent + "%"));
    }
    if (v.line) td.appendChild(el("div", "small muted eta", v.line));
    else if (!v.bar) td.textContent = "—";
    tr.appendChild(td);
    tr.appendChild(el("td", "num wide", j.attempts + " / " + j.max_attempts));
    tr.appendChild(el("td", "wide", j.track));
    tr.appendChild(el("td", "wide mono small", j.lease_owner || "—"));
    tr.appendChild(el("td", "wide small", moment(j.created_at)));
    tr.appendChild(el("td", "small", j.failure_reason || ""));
    return tr;
  }
  function drawCounts(counts) {
    var box = document.getElementById("counts");
    if (!box || !counts) return;
    box.textContent = "";
    ["running", "queued", "succeeded", "failed", "cancelled"].forEach(function (state) {
      if (!counts[state]) return;
      var shown = state === "succeeded" ? "finished" : state;
      var b = el("span", "badge badge-" + shown, counts[state] + " " + shown);
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

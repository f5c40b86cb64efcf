// Live follow for a job's page: polls the JSON API for records newer than the
// newest shown and adds them at the top. Text is set with textContent only.
"use strict";
(function () {
  var table = document.getElementById("lines");
  var box = document.getElementById("follow");
  if (!table || !box) { return; }
  var tbody = table.tBodies[0];
  var after = Number(table.dataset.after || "0");
  var base = table.dataset.base || "";
  var job = table.dataset.job || "";
  var timer = null;
  var MAX_ROWS = 500;
  var PERIOD_MS = 2000;
  var SHOWN_CHARS = 20000;
  var LEVELS = [[21, "CRITICAL"], [17, "ERROR"], [13, "WARNING"], [9, "INFO"], [1, "DEBUG"]];

  function levelOf(n) {
    if (!n) { return "INFO"; }
    for (var i = 0; i < LEVELS.length; i++) { if (n >= LEVELS[i][0]) { return LEVELS[i][1]; } }
    return "INFO";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function pre(cls, text) {
    var e = el("pre", cls, text.length > SHOWN_CHARS ? text.slice(0, SHOWN_CHARS) : text);
    if (text.length > SHOWN_CHARS) {
      e.appendChild(el("span", "muted", "… " + (text.length - SHOWN_CHARS).toLocaleString("en") + " more characters"));
    }
    return e;
  }
  function row(rec) {
    var level = levelOf(rec.severity_number);
    var tr = el("tr", "rec fresh lvl-row-" + level);
    tr.dataset.id = String(rec.id);
    var time = el("td", "time");
    var t = el("time", "", rec.time.replace(/\.\d+/, "").replace("+00:00", "Z"));
    t.setAttribute("datetime", rec.time);
    time.appendChild(t);
    tr.appendChild(time);
    var lv = el("td", "level");
    var pill = el("span", "lv lv-" + level, level);
    pill.title = "severity " + rec.severity_number + " " + (rec.severity_text || "");
    lv.appendChild(pill);
    tr.appendChild(lv);
    var run = el("td", "mono run");
    var runId = rec.attributes && rec.attributes["job.run_id"];
    if (runId) {
      var a = el("a", "", String(runId));
      a.href = base + "/jobs/" + encodeURIComponent(job) + "?run=" + encodeURIComponent(String(runId));
      run.appendChild(a);
    }
    tr.appendChild(run);
    var msg = el("td", "msg");
    var body = String(rec.body);
    var first = body.split("\n", 1)[0];
    var stack = rec.attributes && rec.attributes["exception.stacktrace"];
    var long = first !== body || first.length > 300;
    if (stack || long) {
      var details = el("details");
      var summary = el("summary", "", first.length > 300 ? first.slice(0, 300) + "…" : first);
      if (stack) { summary.appendChild(el("span", "tb", "traceback")); }
      details.appendChild(summary);
      if (long) { details.appendChild(pre("full", body)); }
      if (stack) { details.appendChild(pre("trace", String(stack))); }
      msg.appendChild(details);
    } else {
      msg.textContent = body;
    }
    tr.appendChild(msg);
    return tr;
  }
  function poll() {
    var url = table.dataset.api + "&limit=200&after_id=" + encodeURIComponent(String(after));
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(function (data) {
        var records = data.records || [];
        for (var i = records.length - 1; i >= 0; i--) {
          tbody.insertBefore(row(records[i]), tbody.firstChild);
          after = Math.max(after, Number(records[i].id));
        }
        if (records.length < 200) { after = Math.max(after, Number(data.latest_id || 0)); }
        while (tbody.rows.length > MAX_ROWS) { tbody.deleteRow(tbody.rows.length - 1); }
        box.parentNode.classList.add("on");
        box.parentNode.title = "";
      })
      .catch(function (err) { box.parentNode.title = "follow failed: " + err.message; });
  }
  function set(on) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    box.parentNode.classList.toggle("on", on);
    if (on) { poll(); timer = setInterval(poll, PERIOD_MS); }
    if (history.replaceState) { history.replaceState(null, "", on ? "#follow" : location.pathname + location.search); }
  }
  box.addEventListener("change", function () { set(box.checked); });
  if (location.hash === "#follow") { box.checked = true; set(true); }
}());

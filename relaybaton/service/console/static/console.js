// The console's one script: keep the page's live part fresh and make the timeline
// interactive. It only ever inserts HTML the server escaped; it builds none itself.
"use strict";

(function () {
  const body = document.body;
  const liveUrl = body.dataset.live;
  const live = document.getElementById("live");
  let pending = null;
  let inFlight = false;

  function refresh() {
    pending = null;
    if (!liveUrl || !live || inFlight) {
      return;
    }
    // A person typing in a form must not lose what they typed.
    const active = document.activeElement;
    if (active && live.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      schedule(1000);
      return;
    }
    inFlight = true;
    fetch(liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        const open = openRows();
        live.innerHTML = html;
        restoreRows(open);
        applyFilters();
        body.dataset.refreshed = String(Date.now());
      })
      .catch(function (error) {
        body.dataset.liveError = String(error);
      })
      .finally(function () {
        inFlight = false;
      });
  }

  function schedule(delay) {
    if (pending === null) {
      pending = window.setTimeout(refresh, delay);
    }
  }

  function openRows() {
    return Array.from(document.querySelectorAll(".ev.open")).map(function (row) {
      return row.dataset.id;
    });
  }

  function restoreRows(ids) {
    ids.forEach(function (id) {
      const row = document.querySelector('.ev[data-id="' + CSS.escape(id) + '"]');
      if (row) {
        row.classList.add("open");
      }
    });
  }

  // The timeline: a click on a row shows its details; the filters hide kinds of rows.
  document.addEventListener("click", function (event) {
    const row = event.target.closest(".ev");
    if (row && !event.target.closest("details, a, button, input")) {
      row.classList.toggle("open");
      const details = row.querySelector("details");
      if (details) {
        details.open = row.classList.contains("open");
      }
    }
  });

  const hidden = new Set();
  function applyFilters() {
    document.querySelectorAll(".ev").forEach(function (cell) {
      cell.closest("li").hidden = hidden.has(cell.dataset.kind);
    });
  }
  document.addEventListener("change", function (event) {
    const box = event.target.closest("input[data-filter]");
    if (!box) {
      return;
    }
    if (box.checked) {
      hidden.delete(box.dataset.filter);
    } else {
      hidden.add(box.dataset.filter);
    }
    applyFilters();
  });

  const trace = document.querySelector(".trace h2");
  if (trace) {
    const bar = document.createElement("div");
    bar.className = "filters";
    ["model", "tool", "baton", "approval", "reply", "operator", "swap"].forEach(function (kind) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.dataset.filter = kind;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + kind));
      bar.appendChild(label);
    });
    trace.after(bar);
  }

  // Live updates: a conversation follows its event stream; lists poll.
  const match = /^\/conversations\/([^/]+)$/.exec(window.location.pathname);
  if (match && liveUrl && window.EventSource) {
    const stream = new EventSource("/v1/conversations/" + match[1] + "/events");
    stream.onmessage = function () {
      schedule(150);
    };
    ["handoff", "model_call", "tool_call", "reply", "paused", "approval_requested",
      "approval_decided", "operator"].forEach(function (name) {
      stream.addEventListener(name, function () {
        schedule(150);
      });
    });
  } else if (liveUrl) {
    window.setInterval(function () {
      schedule(0);
    }, 2000);
  }
  body.dataset.ready = "1";
  if (window.performance && performance.mark) {
    performance.mark("console-ready");
  }
})();

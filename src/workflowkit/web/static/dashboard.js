// The workflowkit dashboard's only script: live updates, actions, timeline details.
// Pages are rendered (and escaped) by the server; this script swaps in server-rendered
// fragments and never builds HTML from data.
"use strict";

(function () {
  const POLL_MS = 1000;
  const csrf = () => document.querySelector('meta[name="workflowkit-csrf"]').content;
  const base = () => document.body.dataset.base || "";

  // -- times -------------------------------------------------------------------------------
  function span(seconds) {
    if (seconds < 1) return "just now";
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds >= size) return Math.floor(seconds / size) + unit;
    }
    return Math.floor(seconds) + "s";
  }
  function refreshTimes() {
    const now = Date.now();
    for (const el of document.querySelectorAll("time[datetime]")) {
      const seconds = (now - Date.parse(el.getAttribute("datetime"))) / 1000;
      const text = span(Math.abs(seconds));
      el.textContent = text === "just now" ? text : seconds >= 0 ? text + " ago" : "in " + text;
    }
  }

  // -- flash messages ----------------------------------------------------------------------
  function flash(text, ok) {
    const el = document.getElementById("flash");
    el.textContent = text;
    el.className = ok ? "ok" : "error";
    el.hidden = false;
  }

  // -- live updates ------------------------------------------------------------------------
  let ticks = 0;
  let busy = false;

  function fragmentUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    url.hash = "";
    return url;
  }

  // Replace the live region with a fresh server rendering, keeping what the user was doing.
  async function reload() {
    const live = document.getElementById("live");
    if (!live) return;
    const response = await fetch(fragmentUrl(), { headers: { accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    const checked = new Set(
      [...live.querySelectorAll('input[name="run_id"]:checked')].map((el) => el.value)
    );
    const typed = new Map(
      [...live.querySelectorAll("textarea[id]")].map((el) => [el.id, el.value])
    );
    const open = new Set(
      [...live.querySelectorAll("details[open] > summary")].map((el) => el.textContent)
    );
    const focused = document.activeElement && document.activeElement.id;
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const fresh = holder.firstElementChild;
    for (const box of fresh.querySelectorAll('input[name="run_id"]')) {
      box.checked = checked.has(box.value) && !box.disabled;
    }
    for (const [id, value] of typed) {
      const area = fresh.querySelector("#" + CSS.escape(id));
      if (area) area.value = value;
    }
    for (const summary of fresh.querySelectorAll("details > summary")) {
      if (open.has(summary.textContent)) summary.parentElement.open = true;
    }
    live.replaceWith(fresh);
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
    refreshTimes();
    updateBulk();
  }

  async function poll() {
    const live = document.getElementById("live");
    if (!live || !live.dataset.poll || busy || document.hidden) return;
    busy = true;
    try {
      ticks += 1;
      const response = await fetch(live.dataset.poll, { headers: { accept: "application/json" } });
      if (!response.ok) return;
      const state = await response.json();
      // A running run's bars grow with time: redraw now and then even without new events.
      const stale = live.dataset.active !== undefined && ticks % 5 === 0;
      if (state.version !== live.dataset.version || stale) await reload();
    } catch (err) {
      // The server may be restarting: try again on the next tick.
    } finally {
      busy = false;
    }
  }

  // -- actions -----------------------------------------------------------------------------
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-workflowkit-csrf": csrf() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = { error: response.statusText };
    }
    if (!response.ok) throw new Error(data.error || "request failed (" + response.status + ")");
    return data;
  }

  function selectedRuns() {
    return [...document.querySelectorAll('#live input[name="run_id"]:checked')].map(
      (el) => el.value
    );
  }

  function updateBulk() {
    const button = document.querySelector('[data-action="bulk-cancel"]');
    if (!button) return;
    const count = selectedRuns().length;
    button.disabled = count === 0;
    button.textContent = count ? "Cancel selected (" + count + ")" : "Cancel selected";
  }

  // What a cancel or a fail did: the runs it ended ("cancelled"/"failed"), and those skipped.
  function describeEnded(data, verb) {
    const parts = [];
    if (data[verb].length) parts.push(verb + " " + data[verb].join(", "));
    for (const s of data.skipped) parts.push(s.run_id + " is already " + s.status);
    return parts.join("; ") || "nothing to end";
  }

  // The body of a button's POST, or null when the user dismissed its question.
  function ask(button) {
    if (button.dataset.prompt !== undefined) {
      const reason = window.prompt(button.dataset.prompt, "");
      return reason === null ? null : { reason: reason };
    }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return null;
    return {};
  }

  async function act(button) {
    const action = button.dataset.action;
    if (action === "bulk-cancel") {
      const ids = selectedRuns();
      if (!ids.length || !window.confirm("Cancel " + ids.length + " run(s)?")) return;
      flash(describeEnded(await post(button.dataset.url, { run_ids: ids }), "cancelled"), true);
    } else {
      const body = ask(button);
      if (body === null) return;
      const data = await post(button.dataset.url, body);
      if (action === "rerun") {
        window.location.href = base() + "/runs/" + encodeURIComponent(data.run.run_id);
        return;
      }
      if (action === "cancel") flash(describeEnded(data, "cancelled"), true);
      if (action === "fail") flash(describeEnded(data, "failed"), true);
      if (action === "delete") flash("deleted schedule " + data.deleted, true);
      if (action === "trigger") flash("started run " + data.run.run_id, true);
      if (action === "pause" || action === "resume") {
        flash((action === "pause" ? "paused " : "resumed ") + data.schedule.schedule_id, true);
      }
      if (action === "wake-up") {
        flash(data.woken.length ? "woke " + data.woken.join(", ") : "no pending sleeps", true);
      }
    }
    await reload();
  }

  async function resume(form) {
    const area = form.querySelector("textarea");
    const data = await post(form.dataset.url, {
      token: form.dataset.token,
      payload_json: area.value,
    });
    flash("delivered to hook " + data.hook_id, true);
    await reload();
  }

  // The form's fields as they are ("" for one left empty: the server reads that as unset).
  async function createSchedule(form) {
    const data = await post(form.dataset.url, Object.fromEntries(new FormData(form)));
    flash("created schedule " + data.schedule.schedule_id, true);
    form.reset();
    await reload();
  }

  // -- timeline ----------------------------------------------------------------------------
  function select(item) {
    for (const section of document.querySelectorAll("[data-item-detail]")) {
      section.hidden = section.dataset.itemDetail !== item;
    }
    for (const track of document.querySelectorAll(".track")) {
      const link = track.querySelector("[data-item]");
      track.classList.toggle("selected", !!link && link.dataset.item === item);
    }
    const hint = document.querySelector("#details .hint");
    if (hint) hint.hidden = true;
    const url = new URL(window.location.href);
    url.searchParams.set("item", item);
    url.hash = "";
    window.history.replaceState(null, "", url);
  }

  // Drag along the axis to zoom in: the page reloads showing that range (?from=&to=, in
  // seconds after the run's creation), so the server draws the ticks and bars.
  let drag = null;
  function dragTo(x) {
    const left = Math.max(0, Math.min(drag.rect.width, Math.min(drag.x, x) - drag.rect.left));
    const right = Math.max(0, Math.min(drag.rect.width, Math.max(drag.x, x) - drag.rect.left));
    drag.box.style.left = left + "px";
    drag.box.style.width = right - left + "px";
    return [left / drag.rect.width, right / drag.rect.width];
  }
  document.addEventListener("mousedown", (event) => {
    const axis = event.target.closest(".axis");
    if (!axis || event.button !== 0) return;
    event.preventDefault();
    const box = axis.querySelector(".selection");
    drag = { axis, box, x: event.clientX, rect: axis.getBoundingClientRect() };
    box.hidden = false;
    dragTo(event.clientX);
  });
  document.addEventListener("mousemove", (event) => {
    if (drag) dragTo(event.clientX);
  });
  document.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const [from, to] = dragTo(event.clientX);
    const line = drag.axis.closest(".timeline");
    drag.box.hidden = true;
    drag = null;
    if ((to - from) * line.getBoundingClientRect().width < 4) return; // a click, not a drag
    const first = parseFloat(line.dataset.first);
    const span = parseFloat(line.dataset.last) - first;
    const url = new URL(window.location.href);
    url.searchParams.set("from", (first + from * span).toFixed(6));
    url.searchParams.set("to", (first + to * span).toFixed(6));
    url.hash = "timeline";
    window.location.href = url.toString();
  });

  // -- wiring (delegated, so swapped-in content needs nothing) -------------------------------
  document.addEventListener("click", (event) => {
    const item = event.target.closest("[data-item]");
    if (item) {
      event.preventDefault();
      select(item.dataset.item);
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (button) {
      event.preventDefault();
      act(button).catch((err) => flash(err.message, false));
    }
  });
  document.addEventListener("change", (event) => {
    const all = event.target.closest("[data-select-all]");
    if (all) {
      for (const box of document.querySelectorAll('#live input[name="run_id"]')) {
        if (!box.disabled) box.checked = all.checked;
      }
    }
    updateBulk();
  });
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form.resume, form.new-schedule");
    if (!form) return;
    event.preventDefault();
    const send = form.classList.contains("resume") ? resume : createSchedule;
    send(form).catch((err) => flash(err.message, false));
  });

  refreshTimes();
  updateBulk();
  window.setInterval(() => {
    refreshTimes();
    poll();
  }, POLL_MS);
})();

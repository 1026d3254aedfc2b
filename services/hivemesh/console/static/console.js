// The hivemesh console: one page, routed by the URL's hash, talking to the console's JSON API
// (api/...) with the operator's credential. Every value from the mesh is put on the page as text
// (textContent), never as HTML.
"use strict";

const TERMINAL = new Set(["TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"]);
const STATES = ["submitted", "working", "input_required", "completed", "failed", "canceled", "rejected"];
const CREDENTIAL_KEY = "hivemesh.console.credential";
// How long a broken stream of the task list waits before it is opened again.
const LIST_RECONNECT_MS = 1000;

let stopView = () => {};

// ---- small helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function stateName(state) {
  return (state || "TASK_STATE_UNSPECIFIED").replace("TASK_STATE_", "").toLowerCase();
}

function stateBadge(state) {
  const name = stateName(state);
  return el("span", { class: `state ${name}`, "data-state": name, text: name.replace("_", " ") });
}

function when(stamp) {
  if (!stamp) return "";
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? stamp : date.toLocaleString();
}

// A time of day to the millisecond (the events of one task are often within one second).
function clock(stamp) {
  if (!stamp) return "";
  const date = new Date(stamp);
  if (Number.isNaN(date.getTime())) return stamp;
  return `${date.toLocaleTimeString([], { hour12: false })}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function json(value) {
  return JSON.stringify(value === undefined ? {} : value, null, 2);
}

function flash(message, kind) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = kind || "";
  box.hidden = !message;
}

function credential() {
  return sessionStorage.getItem(CREDENTIAL_KEY) || "";
}

function headers(extra) {
  const found = { ...(extra || {}) };
  const token = credential();
  if (token) found.authorization = `Bearer ${token}`;
  return found;
}

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.param = error.param;
  }
}

async function api(path, options) {
  const init = { ...(options || {}) };
  init.headers = headers(init.body === undefined ? {} : { "content-type": "application/json" });
  if (init.body !== undefined) init.body = JSON.stringify(init.body);
  const response = await fetch(`api/${path}`, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", body: body || {} });
}

function explain(error) {
  if (error.status === 401) return `${error.message}: enter an API key or JWT above`;
  return error.message;
}

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// Server-sent events read with fetch, so the credential travels in a header (EventSource cannot
// send one). Calls onEvent(name, data, id) per event; resolves when the stream ends.
async function readEvents(path, onEvent, signal) {
  const response = await fetch(`api/${path}`, { headers: headers({ accept: "text/event-stream" }), signal });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      let id = "";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")), id);
    }
  }
}

// ---- the tasks list ----

function tasksView(view, query) {
  const filters = {
    state: query.get("state") || "",
    q: query.get("q") || "",
    user: query.get("user") || "",
    tenant: query.get("tenant") || "",
    after: query.get("after") || "",
    before: query.get("before") || "",
  };
  const run = el("form", { class: "inline", id: "run-form" },
    el("label", {}, "Ask the agent", el("input", { type: "text", name: "text", class: "wide", required: true, placeholder: "what is 12 * (3 + 4)?" })),
    el("label", {}, "User", el("input", { type: "text", name: "user", value: "console" })),
    el("label", {}, "Session", el("input", { type: "text", name: "session", value: "console" })),
    el("button", { type: "submit", class: "primary" }, "Run"));
  run.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(run);
    try {
      const made = await post("tasks", { text: form.get("text"), user: form.get("user"), session: form.get("session") });
      location.hash = `#/tasks/${made.task.task_id}`;
    } catch (error) {
      flash(explain(error));
    }
  });

  const stateSelect = el("select", { name: "state" }, el("option", { value: "" }, "any state"),
    STATES.map((s) => el("option", { value: s, selected: s === filters.state }, s.replace("_", " "))));
  const filterForm = el("form", { class: "inline", id: "filter-form" },
    el("label", {}, "State", stateSelect),
    el("label", {}, "Text", el("input", { type: "text", name: "q", value: filters.q, placeholder: "contains" })),
    el("label", {}, "User", el("input", { type: "text", name: "user", value: filters.user })),
    el("label", {}, "Tenant", el("input", { type: "text", name: "tenant", value: filters.tenant, placeholder: "yours" })),
    el("label", {}, "Created after", el("input", { type: "datetime-local", name: "after", value: filters.after })),
    el("label", {}, "Created before", el("input", { type: "datetime-local", name: "before", value: filters.before })),
    el("button", { type: "submit" }, "Filter"));
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(filterForm);
    const params = new URLSearchParams();
    for (const [name, value] of form.entries()) if (value) params.set(name, value);
    location.hash = `#/tasks?${params}`;
  });

  const body = el("tbody", { id: "task-rows" });
  const more = el("button", { type: "button", hidden: true }, "More");
  const note = el("p", { class: "muted" });
  const live = el("span", { class: "live", id: "list-live" });
  view.append(
    el("h1", {}, "Tasks ", live),
    el("section", { class: "panel" }, run),
    el("section", { class: "panel" }, filterForm),
    el("table", {}, el("thead", {}, el("tr", {}, ["Task", "State", "Tenant", "User", "Session", "Created", "Request"].map((h) => el("th", {}, h)))), body),
    note, more);

  function params(token) {
    const found = new URLSearchParams();
    if (filters.state) found.set("state", filters.state);
    if (filters.q) found.set("q", filters.q);
    if (filters.user) found.set("user", filters.user);
    if (filters.tenant) found.set("tenant", filters.tenant);
    if (filters.after) found.set("after", new Date(filters.after).toISOString());
    if (filters.before) found.set("before", new Date(filters.before).toISOString());
    if (token) found.set("page_token", token);
    return found;
  }

  function row(task) {
    return el("tr", { class: "clickable", "data-task-id": task.task_id, onclick: () => { location.hash = `#/tasks/${task.task_id}`; } },
      el("td", { class: "mono" }, el("a", { href: `#/tasks/${task.task_id}` }, task.task_id.slice(0, 12))),
      el("td", {}, stateBadge(task.state)),
      el("td", {}, (task.scope || {}).tenant_id || ""),
      el("td", {}, (task.scope || {}).user_id || ""),
      el("td", {}, (task.scope || {}).session_id || ""),
      el("td", {}, when(task.create_time)),
      el("td", {}, task.input_text || ""));
  }

  let nextToken = "";
  let extraRows = [];
  async function load(token) {
    return api(`tasks?${params(token)}`);
  }
  function show(page) {
    body.replaceChildren(...page.tasks.map(row), ...extraRows);
    note.textContent = page.tasks.length ? "" : (filters.q ? `No match among the ${page.scanned} newest tasks read.` : "No tasks yet.");
  }
  more.addEventListener("click", async () => {
    try {
      const page = await load(nextToken);
      const rows = page.tasks.map(row);
      extraRows = extraRows.concat(rows);
      body.append(...rows);
      nextToken = page.next_page_token;
      more.hidden = !nextToken;
    } catch (error) {
      flash(explain(error));
    }
  });

  // The newest page follows the gateway's changes as they happen (server-sent events); a stream
  // that breaks is opened again, a refusal is shown and not retried.
  const controller = new AbortController();
  async function follow() {
    try {
      const page = await load("");
      show(page);
      nextToken = page.next_page_token;
      more.hidden = !nextToken;
    } catch (error) {
      flash(explain(error));
      return;
    }
    while (!controller.signal.aborted) {
      try {
        await readEvents(`tasks/live?${params("")}`, (name, data) => {
          if (name === "tasks") {
            live.textContent = "live";
            live.classList.add("on");
            show(data);
          } else if (name === "error") {
            flash(data.error ? data.error.message : "the task list's stream failed");
          }
        }, controller.signal);
      } catch (error) {
        if (error.name === "AbortError") return;
        flash(explain(error));
        if (error.status && error.status < 500 && error.status !== 429) return;
      } finally {
        live.textContent = "";
        live.classList.remove("on");
      }
      await new Promise((resolve) => setTimeout(resolve, LIST_RECONNECT_MS));
    }
  }
  follow();
  return () => controller.abort();
}

// ---- one task ----

function describe(event) {
  const kinds = ["submitted", "state_changed", "intent_recognized", "step_started", "tool_called", "tool_result",
    "answer_delta", "notice", "input_requested", "input_received", "completed", "failed", "canceled"];
  const kind = kinds.find((k) => k in event) || "unknown";
  const value = event[kind] || {};
  switch (kind) {
    case "submitted": return [kind, value.input_text || "", null];
    case "state_changed": return [kind, `${stateName(value.state)}${value.reason ? `: ${value.reason}` : ""}`, value.release ? { release: value.release } : null];
    case "intent_recognized": return [kind, `${value.intent} (${Number(value.confidence || 0).toFixed(2)})${value.out_of_scope ? ", out of scope" : ""}`, null];
    case "step_started": return [kind, `step ${value.step}: ${value.name}`, null];
    case "tool_called": return [kind, `step ${value.step}: ${value.tool_name}`, { arguments: value.arguments || {}, idempotency_key: value.idempotency_key }];
    case "tool_result": return [kind, `step ${value.step}: ${value.tool_name} → ${value.error ? `${value.error.reason}: ${value.error.message}` : value.display || ""}`, value.error ? { error: value.error } : { result: value.result || {} }];
    case "answer_delta": return [kind, value.text || "", null];
    case "notice": return [kind, `${value.code}: ${value.message}`, null];
    case "input_requested": return [kind, value.question || "", value.missing ? { missing: value.missing } : null];
    case "input_received": return [kind, value.text || "", null];
    case "completed": return [kind, value.answer || "", null];
    case "failed": return [kind, `${(value.error || {}).reason || ""}: ${(value.error || {}).message || ""}`, null];
    case "canceled": return [kind, value.reason || "", null];
    default: return [kind, "", event];
  }
}

function taskView(view, taskId) {
  const controller = new AbortController();
  let task = null;
  let last = 0;
  let following = false;
  let wanted = false;
  let actionsState = null;
  // The answer of the latest attempt, joined from its deltas (a later attempt starts over).
  let answerAttempt = -1;
  let answerText = "";

  const header = el("div");
  const facts = el("dl", { class: "facts" });
  const answer = el("div", { class: "answer", id: "answer" });
  const actions = el("div", { class: "actions" });
  const verdict = el("span", { id: "verify-result" });
  const live = el("span", { class: "live", id: "live" });
  const rows = el("tbody", { id: "timeline" });
  const waterfall = el("section", { class: "panel waterfall", id: "trace" }, el("p", { class: "muted" }, "The trace appears when the task has ended."));
  view.append(
    el("p", {}, el("a", { href: "#/tasks" }, "← Tasks")),
    header,
    el("section", { class: "panel" }, facts),
    el("section", { class: "panel" }, el("h2", {}, "Answer"), answer, el("div", { class: "actions spaced" }, actions, verdict)),
    el("h2", {}, "Trace ", el("button", { type: "button", id: "load-trace", onclick: () => loadTrace() }, "Refresh")),
    waterfall,
    el("h2", {}, "Timeline ", live),
    el("table", {}, el("thead", {}, el("tr", {}, ["#", "Time", "Attempt", "Event", "Detail"].map((h) => el("th", {}, h)))), rows));

  function showAnswer() {
    const asking = task && task.state === "TASK_STATE_INPUT_REQUIRED";
    answer.classList.toggle("question", Boolean(asking));
    const text = task && TERMINAL.has(task.state) && task.answer ? task.answer : answerText || (task && task.answer) || "";
    answer.textContent = text || (task && TERMINAL.has(task.state) ? "(no answer)" : "…");
  }

  function showTask() {
    header.replaceChildren(el("h1", {}, "Task ", el("span", { class: "mono" }, task.task_id), " ", stateBadge(task.state)));
    const scope = task.scope || {};
    const error = task.error ? `${task.error.reason}: ${task.error.message}` : "";
    const items = [
      ["Request", task.input_text], ["Tenant", scope.tenant_id], ["User", scope.user_id], ["Session", scope.session_id],
      ["Created", when(task.create_time)], ["Updated", when(task.update_time)], ["Attempts", task.attempts || 0],
      ["Events", task.last_sequence || 0], ["Error", error],
    ];
    facts.replaceChildren(...items.filter(([, v]) => v !== "" && v !== undefined).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    // The actions are rebuilt only when the state changes, so an answer being typed is kept.
    if (actionsState !== task.state) {
      showActions();
      if (TERMINAL.has(task.state)) loadTrace();
    }
    showAnswer();
  }

  function showActions() {
    actionsState = task.state;
    actions.replaceChildren();
    if (!TERMINAL.has(task.state)) {
      actions.append(el("button", { type: "button", id: "cancel-task", class: "danger", onclick: cancel }, "Cancel task"));
    }
    actions.append(el("button", { type: "button", id: "verify-task", onclick: verify }, "Verify hash chain"));
    if (task.state === "TASK_STATE_INPUT_REQUIRED") {
      const form = el("form", { class: "inline", id: "answer-form" },
        el("input", { type: "text", name: "text", class: "wide", required: true, placeholder: "your answer" }),
        el("button", { type: "submit", class: "primary" }, "Answer"));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          task = (await post(`tasks/${taskId}/answer`, { text: new FormData(form).get("text") })).task;
          showTask();
          follow();
        } catch (error) {
          flash(explain(error));
        }
      });
      actions.append(form);
    }
  }

  async function verify() {
    verdict.textContent = "checking…";
    verdict.className = "";
    try {
      const found = await post(`tasks/${taskId}/verify`, {});
      verdict.textContent = found.intact
        ? `hash chain intact (${found.events} events)`
        : `broken at event ${found.broken_at}: ${found.problem}`;
      verdict.className = found.intact ? "ok-text" : "bad-text";
      verdict.dataset.intact = String(found.intact);
    } catch (error) {
      verdict.textContent = "";
      flash(explain(error));
    }
  }

  async function cancel() {
    if (!(await confirmAction(`Cancel task ${taskId}?`))) return;
    try {
      task = (await post(`tasks/${taskId}/cancel`, { reason: "canceled from the console" })).task;
      showTask();
      follow();
    } catch (error) {
      flash(explain(error));
    }
  }

  // Tool arguments and results are shown; the release a run ran on is folded away.
  function details(kind, detail) {
    if (kind !== "state_changed") return el("pre", {}, json(detail));
    return el("details", {}, el("summary", { class: "muted" }, "release"), el("pre", {}, json(detail.release)));
  }

  function addEvent(event) {
    const sequence = Number(event.sequence);
    if (sequence <= last) return;
    last = sequence;
    const attempt = Number(event.attempt || 0);
    const [kind, summary, detail] = describe(event);
    if (kind === "answer_delta") {
      if (attempt > answerAttempt) { answerAttempt = attempt; answerText = ""; }
      if (attempt === answerAttempt) answerText += summary;
    }
    rows.append(el("tr", { "data-kind": kind, "data-sequence": sequence },
      el("td", { class: "mono" }, sequence),
      el("td", { class: "mono" }, clock(event.time)),
      el("td", {}, attempt || "—"),
      el("td", { class: `kind ${kind}` }, kind.replace("_", " ")),
      el("td", {}, summary, detail ? details(kind, detail) : null)));
    showAnswer();
  }

  // The service a span belongs to: the one its RPC names (hivemesh.tool.v1.ToolService: tool),
  // else the process's service.name (hivemesh-planner: planner).
  function serviceOf(span) {
    const rpc = (span.attributes || {})["rpc.service"];
    const match = typeof rpc === "string" && rpc.match(/^hivemesh\.([a-z]+)\.v1\./);
    return match ? match[1] : rpc || (span.service || "").replace(/^hivemesh-/, "");
  }

  // The task's trace as a waterfall: one bar per span, placed by its start and length.
  async function loadTrace() {
    try {
      const found = await api(`tasks/${taskId}/trace`);
      if (!found.available) {
        waterfall.replaceChildren(el("p", { class: "muted" }, `No trace: ${found.reason}.`));
        return;
      }
      if (!found.spans.length) {
        waterfall.replaceChildren(el("p", { class: "muted" }, found.whole_file ? "No spans of this task yet." : "No spans of this task in the newest part of the trace file."));
        return;
      }
      const start = Math.min(...found.spans.map((s) => Number(s.start_ns)));
      const end = Math.max(...found.spans.map((s) => Number(s.end_ns || s.start_ns)));
      const total = Math.max(end - start, 1);
      const depth = new Map();
      const byId = new Map(found.spans.map((s) => [s.span_id, s]));
      const level = (span) => {
        if (depth.has(span.span_id)) return depth.get(span.span_id);
        const parent = span.parent_id && byId.get(span.parent_id);
        const found = parent && parent !== span ? level(parent) + 1 : 0;
        depth.set(span.span_id, found);
        return found;
      };
      waterfall.replaceChildren(
        el("div", { class: "wf-head muted" }, el("span", {}, "span"), el("span", {}, "service"), el("span", {}, `${(total / 1e6).toFixed(1)} ms in all`)),
        ...found.spans.map((span) => {
          const from = (Number(span.start_ns) - start) / total;
          const length = (Number(span.end_ns || span.start_ns) - Number(span.start_ns)) / 1e6;
          const bar = el("div", { class: `wf-bar ${span.status === "ERROR" ? "error" : ""}` });
          bar.style.marginLeft = `${(from * 100).toFixed(2)}%`;
          bar.style.width = `${Math.max(((length * 1e6) / total) * 100, 0.3).toFixed(2)}%`;
          // "/hivemesh.tool.v1.ToolService/InvokeTool" reads "InvokeTool", a call made marked "→".
          const short = span.name.replace(/^\/?[a-z.]+\.v1\.[A-Za-z]+\//, "") + (span.kind === "CLIENT" ? " →" : "");
          const name = el("span", { class: "wf-name mono", title: `${span.name} (${span.kind})` }, short);
          name.style.paddingLeft = `${level(span) * 12}px`;
          const service = serviceOf(span);
          return el("div", { class: "wf-row", "data-span": span.name, "data-service": service, "data-status": span.status },
            name, el("span", { class: "wf-service" }, service),
            el("div", { class: "wf-track" }, bar), el("span", { class: "wf-ms mono" }, `${length.toFixed(length < 10 ? 2 : 0)} ms`));
        }));
    } catch (error) {
      flash(explain(error));
    }
  }

  // Follows the task's events until it ends or asks a question. A call while it runs (an answer
  // was just sent) makes it go round once more, so no state change is missed.
  async function follow() {
    wanted = true;
    if (following) return;
    following = true;
    live.textContent = "live";
    live.classList.add("on");
    try {
      while (wanted) {
        wanted = false;
        let failed = null;
        await readEvents(`tasks/${taskId}/events?after=${last}`, (name, data) => {
          if (name === "task-event") addEvent(data);
          else if (name === "error") failed = data;
        }, controller.signal);
        if (failed) {
          flash(failed.error ? failed.error.message : "the event stream failed");
          break;
        }
        task = (await api(`tasks/${taskId}`)).task;
        showTask();
        if (!TERMINAL.has(task.state) && task.state !== "TASK_STATE_INPUT_REQUIRED") {
          wanted = true;
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") flash(explain(error));
    } finally {
      following = false;
      live.textContent = "";
      live.classList.remove("on");
    }
  }

  (async () => {
    try {
      task = (await api(`tasks/${taskId}`)).task;
      showTask();
      follow();
    } catch (error) {
      header.replaceChildren(el("h1", {}, "Task ", el("span", { class: "mono" }, taskId)));
      flash(explain(error));
    }
  })();
  return () => controller.abort();
}

// ---- dead letters ----

function deadLettersView(view) {
  const rows = el("tbody", { id: "dead-letter-rows" });
  const detail = el("div", { id: "dead-letter-detail" });
  const note = el("p", { class: "muted" });
  const purgeAll = el("button", { type: "button", class: "danger", id: "purge-all" }, "Purge all");
  view.append(
    el("h1", {}, "Dead letters"),
    el("p", { class: "muted" }, "Tasks that failed on every attempt they were allowed. Replay puts one back on the queue with a fresh count of attempts; purge drops the queue entry (the task and its log stay)."),
    el("div", { class: "actions" }, purgeAll),
    el("table", {}, el("thead", {}, el("tr", {}, ["Task", "Request", "Deliveries", "Last error", "Failed", ""].map((h) => el("th", {}, h)))), rows),
    note, detail);

  async function load() {
    try {
      const found = [];
      let token = "";
      do {
        const page = await api(`dead-letters?page_size=200${token ? `&page_token=${encodeURIComponent(token)}` : ""}`);
        found.push(...page.dead_letters);
        token = page.next_page_token;
      } while (token && found.length < 1000);
      rows.replaceChildren(...found.map(row));
      note.textContent = found.length ? "" : "No dead letters.";
      purgeAll.disabled = !found.length;
    } catch (error) {
      flash(explain(error));
    }
  }

  function row(letter) {
    const task = letter.task || {};
    return el("tr", { "data-task-id": task.task_id },
      el("td", { class: "mono" }, el("a", { href: `#/tasks/${task.task_id}` }, (task.task_id || "").slice(0, 12))),
      el("td", {}, task.input_text || ""),
      el("td", {}, letter.delivery_count || 0),
      el("td", {}, letter.last_error || ""),
      el("td", {}, when(task.update_time)),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "inspect", onclick: () => inspect(task.task_id) }, "Inspect"),
        el("button", { type: "button", class: "replay primary", onclick: () => replay(task.task_id) }, "Replay"),
        el("button", { type: "button", class: "purge danger", onclick: () => purge(task.task_id) }, "Purge")));
  }

  async function inspect(taskId) {
    try {
      const letter = (await api(`dead-letters/${taskId}`)).dead_letter;
      detail.replaceChildren(el("section", { class: "panel" }, el("h2", {}, `Dead letter ${taskId}`), el("pre", {}, json(letter))));
    } catch (error) {
      flash(explain(error));
    }
  }

  async function replay(taskId) {
    if (!(await confirmAction(`Replay task ${taskId}? It goes back on the queue.`))) return;
    try {
      await post(`dead-letters/${taskId}/replay`, {});
      flash(`Task ${taskId} is back on the queue.`, "info");
      await load();
    } catch (error) {
      flash(explain(error));
    }
  }

  async function purge(taskId) {
    if (!(await confirmAction(`Purge the dead letter of task ${taskId}? It cannot be replayed afterwards.`))) return;
    try {
      const done = await post("dead-letters/purge", { task_id: taskId });
      flash(`Purged ${done.purged_count} dead letter(s).`, "info");
      await load();
    } catch (error) {
      flash(explain(error));
    }
  }

  purgeAll.addEventListener("click", async () => {
    if (!(await confirmAction("Purge every dead letter of this tenant? They cannot be replayed afterwards."))) return;
    try {
      const done = await post("dead-letters/purge", { all: true });
      flash(`Purged ${done.purged_count} dead letter(s).`, "info");
      await load();
    } catch (error) {
      flash(explain(error));
    }
  });
  load();
  return () => {};
}

// ---- tools ----

// What the figures of one tool say between two snapshots of the metrics (the first may be null:
// since the process started): calls, those that failed, calls/s, mean and p99 (seconds).
function toolFigures(name, first, last) {
  const count = (snapshot, ok) => (snapshot ? snapshot.tools : [])
    .filter((r) => r.tool === name && (ok === undefined || (r.outcome === "OK") === ok))
    .reduce((sum, r) => sum + r.count, 0);
  const timing = (snapshot) => (snapshot ? snapshot.tool_durations : []).find((d) => d.tool === name);
  const calls = count(last) - count(first);
  const failed = count(last, false) - count(first, false);
  const [now, then] = [timing(last), timing(first)];
  const seconds = first ? Math.max(last.time - first.time, 1e-9) : null;
  const observed = now ? now.count - (then ? then.count : 0) : 0;
  return {
    calls,
    failed,
    rate: seconds === null ? null : calls / seconds,
    mean: observed > 0 ? (now.sum - (then ? then.sum : 0)) / observed : null,
    p99: now ? quantile(bucketDelta(now.buckets, then && then.buckets), 0.99) : null,
  };
}

function toolsView(view) {
  const list = el("div", { id: "tools" });
  const note = el("p", { class: "muted", id: "tools-note" });
  view.append(el("h1", {}, "Tools"), note, list);
  const figures = new Map();
  const snapshots = [];

  function showFigures() {
    const first = snapshots[0];
    const last = snapshots[snapshots.length - 1];
    if (!last) return;
    if (!last.available) {
      note.textContent = "The tool service runs in another process: its call rate and latency are on its own /metrics (hivemesh_tool_calls_total, hivemesh_tool_duration_seconds), which the console reads when HIVEMESH_CONSOLE_TOOL_METRICS_URL names it.";
      for (const box of figures.values()) box.replaceChildren();
      return;
    }
    const windowed = first !== last;
    const replicas = last.tools_only ? ` Read from the tool service's /metrics (${last.sources} of ${last.sources + last.unreachable.length} answering, added up).` : "";
    note.textContent = (windowed
      ? `Calls since the tool service started, and their rate and p99 over the last ${Math.round(last.time - first.time)} s.`
      : "Calls since the tool service started; the rate over time appears after the next refresh.") + replicas;
    for (const [name, box] of figures) {
      const all = toolFigures(name, null, last);
      const recent = windowed ? toolFigures(name, first, last) : null;
      box.dataset.calls = String(all.calls);
      box.dataset.failed = String(all.failed);
      box.replaceChildren(
        el("span", { class: "calls" }, `${all.calls} call${all.calls === 1 ? "" : "s"}${all.failed ? ` (${all.failed} failed)` : ""}`),
        el("span", { class: "latency" }, `mean ${milliseconds(all.mean)} · p99 ${milliseconds(all.p99)}`),
        el("span", { class: "rate" }, recent ? `${recent.rate.toFixed(2)}/s · p99 ${milliseconds(recent.p99)} lately` : "measuring…"));
    }
  }

  async function refresh() {
    try {
      const metrics = await api("metrics");
      snapshots.push(metrics);
      while (snapshots.length > 2 && metrics.time - snapshots[1].time >= WINDOW_S) snapshots.shift();
      showFigures();
    } catch (error) {
      flash(explain(error));
    }
  }

  (async () => {
    try {
      const { tools } = await api("tools");
      list.replaceChildren(...tools.map((tool) => {
        const facts = [];
        facts.push(tool.side_effects ? "has side effects" : "read-only");
        if (tool.source) facts.push(`from ${tool.source}`);
        if (tool.timeout) facts.push(`timeout ${tool.timeout}`);
        if (tool.max_concurrency) facts.push(`at most ${tool.max_concurrency} at once`);
        const box = el("p", { class: "tool-figures mono" });
        figures.set(tool.name, box);
        return el("section", { class: "panel tool", "data-tool": tool.name },
          el("h2", { class: "mono" }, tool.name),
          el("p", {}, tool.description || ""),
          facts.length ? el("p", { class: "muted" }, facts.join(" · ")) : null,
          box,
          el("div", { class: "schemas" },
            el("div", {}, el("strong", {}, "Arguments"), el("pre", {}, json(tool.arguments_schema))),
            el("div", {}, el("strong", {}, "Result"), el("pre", {}, json(tool.result_schema)))));
      }));
      showFigures();
    } catch (error) {
      flash(explain(error));
    }
  })();
  refresh();
  const timer = setInterval(refresh, MAP_REFRESH_MS);
  return () => clearInterval(timer);
}

// ---- memory ----

const LAYERS = {
  short_term: ["Short-term", "turns of live sessions"],
  long_term: ["Long-term", "memories, one vector each"],
  structured: ["Structured", "records"],
};

function memoryView(view, query) {
  const form = el("form", { class: "inline", id: "memory-form" },
    el("label", {}, "Tenant", el("input", { type: "text", name: "tenant", value: query.get("tenant") || "", placeholder: "yours" })),
    el("label", {}, "User", el("input", { type: "text", name: "user", value: query.get("user") || "", placeholder: "every user" })),
    el("button", { type: "submit" }, "Count"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form).entries()) if (value) params.set(name, value);
    location.hash = `#/memory?${params}`;
  });
  const title = el("h2", { id: "memory-tenant" });
  const rows = el("tbody", { id: "memory-rows" });
  view.append(
    el("h1", {}, "Memory"),
    el("p", { class: "muted" }, "What each layer of memory holds for a tenant, or one user of it: counts only, never content. A credential counts its own tenant; another tenant can be named only when the gateway does not authenticate."),
    el("section", { class: "panel" }, form),
    title,
    el("table", {}, el("thead", {}, el("tr", {}, ["Layer", "Store", "Items", ""].map((h) => el("th", {}, h)))), rows));
  (async () => {
    try {
      const params = new URLSearchParams();
      if (query.get("tenant")) params.set("tenant", query.get("tenant"));
      if (query.get("user")) params.set("user", query.get("user"));
      const found = await api(`memory?${params}`);
      title.textContent = `Tenant ${found.tenant}${query.get("user") ? `, user ${query.get("user")}` : ""}`;
      rows.replaceChildren(...found.layers.map((layer) => {
        const [name, unit] = LAYERS[layer.layer] || [layer.layer, "items"];
        const note = layer.layer === "short_term" ? `${unit} (${found.sessions} session${found.sessions === 1 ? "" : "s"})` : unit;
        return el("tr", { "data-layer": layer.layer, "data-items": layer.items },
          el("td", {}, name), el("td", { class: "mono" }, layer.store),
          el("td", { class: "mono count" }, layer.items), el("td", { class: "muted" }, note));
      }));
    } catch (error) {
      flash(explain(error));
    }
  })();
  return () => {};
}

// ---- the service map ----

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_S = 60;
const MAP_REFRESH_MS = 2000;
// Where each box sits on the map.
const NODES = {
  clients: { x: 90, y: 210, label: "clients" },
  gateway: { x: 360, y: 210, label: "gateway" },
  planner: { x: 640, y: 210, label: "planner" },
  language: { x: 980, y: 70, label: "language" },
  memory: { x: 980, y: 210, label: "memory" },
  tool: { x: 980, y: 350, label: "tool" },
};
// The calls between services, each counted by the service that answers them (the methods listed,
// or all of its service's). ToolService's figures include the gateway's own ListTools and
// InvokeTool; the gateway hands tasks to the planner through the task queue, not an RPC. Streams
// that last as long as a task or a watch (WatchTask, WatchTasks, ExecuteTask) count as requests
// but not in the p99.
const STREAMS = ["WatchTask", "WatchTasks", "ExecuteTask"];
const EDGES = [
  { from: "clients", to: "gateway", service: "hivemesh.gateway.v1.GatewayService" },
  { from: "gateway", to: "planner", queue: true },
  { from: "planner", to: "language", service: "hivemesh.language.v1.LanguageService", methods: ["Understand", "Generate"] },
  { from: "memory", to: "language", service: "hivemesh.language.v1.LanguageService", methods: ["Embed"] },
  { from: "planner", to: "memory", service: "hivemesh.memory.v1.MemoryService" },
  { from: "planner", to: "tool", service: "hivemesh.tool.v1.ToolService" },
];

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// The q-quantile (seconds) of the observations of cumulative histogram buckets (a Map from upper
// bound to count; the last bound is Infinity), linear within a bucket; null without observations.
function quantile(merged, q) {
  const bounds = [...merged.keys()].sort((a, b) => a - b);
  const observed = bounds.length ? merged.get(Infinity) || merged.get(bounds[bounds.length - 1]) : 0;
  if (!(observed > 0)) return null;
  const target = observed * q;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = merged.get(bound);
    if (count >= target) {
      // The last (unbounded) bucket answers its lower bound.
      return bound === Infinity ? lower : lower + (bound - lower) * ((target - below) / Math.max(count - below, 1e-9));
    }
    lower = bound;
    below = count;
  }
  return null;
}

// Buckets of a later snapshot minus those of an earlier one (missing: none), as a Map.
function bucketDelta(buckets, earlier, into) {
  const merged = into || new Map();
  buckets.forEach(([le, count], i) => {
    const bound = le === null ? Infinity : le;
    merged.set(bound, (merged.get(bound) || 0) + count - (earlier && earlier[i] ? earlier[i][1] : 0));
  });
  return merged;
}

function milliseconds(seconds) {
  return seconds === null ? "–" : `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
}

// Requests/s, error share and p99 (seconds) of the calls an edge counts, between two snapshots.
function edgeFigures(edge, first, last) {
  const picks = (row) => row.service === edge.service && (!edge.methods || edge.methods.includes(row.method));
  const key = (row) => `${row.service}/${row.method}/${row.code || ""}`;
  const before = new Map(first.requests.filter(picks).map((r) => [key(r), r.count]));
  let total = 0;
  let errors = 0;
  for (const row of last.requests.filter(picks)) {
    const delta = row.count - (before.get(key(row)) || 0);
    total += delta;
    if (row.code !== "OK") errors += delta;
  }
  const earlier = new Map(first.durations.filter(picks).map((d) => [`${d.service}/${d.method}`, d.buckets]));
  const merged = new Map();
  for (const row of last.durations.filter((d) => picks(d) && !STREAMS.includes(d.method))) {
    bucketDelta(row.buckets, earlier.get(`${row.service}/${row.method}`), merged);
  }
  const p99 = quantile(merged, 0.99);
  const seconds = Math.max(last.time - first.time, 1e-9);
  return { rate: total / seconds, errors: total ? errors / total : 0, p99, total };
}

function servicesView(view) {
  const snapshots = [];
  const map = svg("svg", { viewBox: "0 0 1080 420", class: "service-map", id: "service-map", role: "img" });
  const note = el("p", { class: "muted", id: "map-note" });
  const rows = el("tbody", { id: "service-rows" });
  view.append(
    el("h1", {}, "Services"),
    el("section", { class: "panel" }, map, note),
    el("table", {}, el("thead", {}, el("tr", {}, ["Service", "Address", "Liveness", "Readiness"].map((h) => el("th", {}, h)))), rows));

  function draw(health) {
    const status = new Map(health.map((h) => [h.service, h]));
    const first = snapshots[0];
    const last = snapshots[snapshots.length - 1];
    map.replaceChildren(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
    for (const edge of EDGES) {
      const a = NODES[edge.from];
      const b = NODES[edge.to];
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const length = Math.hypot(dx, dy);
      const [ux, uy] = [dx / length, dy / length];
      const start = [a.x + ux * 62, a.y + uy * 30];
      const end = [b.x - ux * 62, b.y - uy * 30];
      let label = ["task queue", ""];
      let state = "quiet";
      if (!edge.queue) {
        if (first && last && last.available && !last.tools_only && first !== last) {
          const f = edgeFigures(edge, first, last);
          label = [`${f.rate.toFixed(1)}/s · ${(f.errors * 100).toFixed(1)}% err`, `p99 ${milliseconds(f.p99)}`];
          state = f.total === 0 ? "quiet" : f.errors > 0.05 ? "bad" : "ok";
        } else {
          label = [last && (!last.available || last.tools_only) ? "no figures here" : "measuring…", ""];
        }
      }
      const group = svg("g", { class: `edge ${state}${edge.queue ? " queue" : ""}`, "data-edge": `${edge.from}-${edge.to}` },
        svg("line", { x1: start[0], y1: start[1], x2: end[0], y2: end[1], "marker-end": "url(#arrow)" }),
        svg("text", { x: (start[0] + end[0]) / 2, y: (start[1] + end[1]) / 2 - 20, "text-anchor": "middle" },
          svg("tspan", { x: (start[0] + end[0]) / 2, dy: "0" }, label[0]),
          svg("tspan", { x: (start[0] + end[0]) / 2, dy: "14" }, label[1])));
      map.append(group);
    }
    for (const [name, node] of Object.entries(NODES)) {
      const found = status.get(name);
      const health = name === "clients" ? "none" : found ? (found.readiness === "serving" ? "serving" : found.liveness === "serving" ? "degraded" : "down") : "unknown";
      map.append(svg("g", { class: `node ${health}`, "data-service": name, "data-health": health },
        svg("rect", { x: node.x - 60, y: node.y - 28, width: 120, height: 56, rx: 8 }),
        svg("text", { x: node.x, y: node.y - 3, "text-anchor": "middle", class: "name" }, node.label),
        svg("text", { x: node.x, y: node.y + 15, "text-anchor": "middle", class: "sub" }, name === "clients" ? "CLI, SDKs, edge" : health)));
    }
    rows.replaceChildren(...health.map((h) => el("tr", { "data-service": h.service },
      el("td", {}, h.service), el("td", { class: "mono" }, h.address),
      el("td", { class: h.liveness === "serving" ? "ok-text" : "bad-text" }, h.liveness),
      el("td", { class: h.readiness === "serving" ? "ok-text" : "bad-text" }, h.readiness))));
    if (last && (!last.available || last.tools_only)) {
      note.textContent = "The services run in other processes: their figures are on their own /metrics (HIVEMESH_METRICS_PORT).";
    } else if (first && last && first !== last) {
      note.textContent = `Each call counted by the service that answers it, over the last ${Math.round(last.time - first.time)} s. The planner takes tasks from the queue; ToolService's figures include the gateway's ListTools and InvokeTool; the p99 leaves out WatchTask, WatchTasks and ExecuteTask, which last as long as what they watch.`;
    } else {
      note.textContent = "Measuring: figures appear after the next refresh.";
    }
  }

  async function refresh() {
    try {
      const [health, metrics] = await Promise.all([api("services"), api("metrics")]);
      snapshots.push(metrics);
      while (snapshots.length > 2 && metrics.time - snapshots[1].time >= WINDOW_S) snapshots.shift();
      draw(health.services);
    } catch (error) {
      flash(explain(error));
    }
  }
  refresh();
  const timer = setInterval(refresh, MAP_REFRESH_MS);
  return () => clearInterval(timer);
}

// ---- routing ----

function route() {
  stopView();
  flash("");
  const view = document.getElementById("view");
  view.replaceChildren();
  const hash = location.hash.replace(/^#\/?/, "") || "tasks";
  const [path, search] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const query = new URLSearchParams(search || "");
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.dataset.nav === parts[0]);
  }
  if (parts[0] === "tasks" && parts[1]) stopView = taskView(view, parts[1]);
  else if (parts[0] === "dead-letters") stopView = deadLettersView(view);
  else if (parts[0] === "tools") stopView = toolsView(view);
  else if (parts[0] === "memory") stopView = memoryView(view, query);
  else if (parts[0] === "services") stopView = servicesView(view);
  else stopView = tasksView(view, query);
}

async function gatewayStatus() {
  const dot = document.getElementById("gateway-status");
  try {
    const health = await api("health");
    dot.className = `status-dot ${health.gateway.ready ? "ready" : "down"}`;
    dot.title = `gateway ${health.gateway.address}: ${health.gateway.ready ? "ready" : "not ready"}`;
  } catch {
    dot.className = "status-dot down";
    dot.title = "the console cannot be reached";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("credential");
  input.value = credential();
  document.getElementById("credential-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(CREDENTIAL_KEY, input.value.trim());
    route();
  });
  window.addEventListener("hashchange", route);
  route();
  gatewayStatus();
  setInterval(gatewayStatus, 5000);
});

// The Shopmind staff console: copy review and the support inbox, over the staff routes.
// Plain DOM, no build step. Every string from the API is set as text, never as markup.
"use strict";

const TOKEN_KEY = "shopmind.staff.token";
const PKCE_KEY = "shopmind.staff.pkce";
const NAME_KEY = "shopmind.staff.name";
const CHECK_DELAY_MS = 300;

const $ = (sel, root = document) => root.querySelector(sel);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
  }
  return node;
}

let config = { sign_in: { mode: "token" } };

function say(message, isError = false) {
  const s = $("#status");
  s.textContent = message;
  s.classList.toggle("error", isError);
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

class ApiFailure extends Error {
  constructor(status, code, message, data) {
    super(message);
    this.status = status;
    this.code = code;
    this.data = data;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await resp.json();
  } catch (_) {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn();
    }
    throw new ApiFailure(resp.status, err.code || "error", err.message || resp.statusText, data);
  }
  return data;
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
/** Conversations count time in Unix seconds, drafts in milliseconds. */
const whenSecs = (secs) => when(secs ? secs * 1000 : 0);
const reviewer = () => $("#reviewer").value.trim() || undefined;

// ---------------------------------------------------------------- sign-in

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const redirectUri = () => location.origin + location.pathname;

async function cognitoStart() {
  const { domain, client_id } = config.sign_in;
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const url = new URL(domain + "/oauth2/authorize");
  url.search = new URLSearchParams({
    response_type: "code",
    client_id,
    redirect_uri: redirectUri(),
    scope: "openid email profile",
    code_challenge_method: "S256",
    code_challenge: b64url(new Uint8Array(digest)),
    state,
  }).toString();
  location.assign(url.toString());
}

/** Back from Cognito with `?code=`: trade it (and the PKCE verifier) for tokens. */
async function cognitoFinish() {
  const q = new URLSearchParams(location.search);
  if (!q.has("code") && !q.has("error")) return;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", location.pathname + location.hash);
  if (q.has("error")) throw new Error("sign-in failed: " + q.get("error"));
  if (!saved || saved.state !== q.get("state")) throw new Error("sign-in did not match; sign in again");
  const { domain, client_id } = config.sign_in;
  const resp = await fetch(domain + "/oauth2/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id,
      code: q.get("code"),
      redirect_uri: redirectUri(),
      code_verifier: saved.verifier,
    }),
  });
  if (!resp.ok) throw new Error("sign-in failed: the token exchange answered " + resp.status);
  const tokens = await resp.json();
  sessionStorage.setItem(TOKEN_KEY, tokens.id_token);
}

function showSignIn() {
  for (const id of ["#copy", "#support", "#nav", "#who"]) $(id).hidden = true;
  $("#signin").hidden = false;
  const cognito = config.sign_in.mode === "cognito";
  $("#signin-token").hidden = cognito;
  $("#signin-cognito").hidden = !cognito;
  (cognito ? $("#cognito-sign-in") : $("#token")).focus();
}

function signedIn() {
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#who").hidden = false;
  route();
}

// ---------------------------------------------------------------- screens

function route() {
  if (!token()) return showSignIn();
  const screen = location.hash === "#support" ? "support" : "copy";
  $("#copy").hidden = screen !== "copy";
  $("#support").hidden = screen !== "support";
  $("#tab-copy").removeAttribute("aria-current");
  $("#tab-support").removeAttribute("aria-current");
  $(screen === "copy" ? "#tab-copy" : "#tab-support").setAttribute("aria-current", "page");
  if (screen === "copy") loadDrafts();
  else loadConversations();
}

// ---------------------------------------------------------------- copy review

const copyPages = { cursors: [null], index: 0 };
let drafts = [];

const keyOf = (d) => `${d.product_id}/${d.channel}/${d.locale}`;
const draftPath = (d) =>
  `/v1/copy/drafts/${encodeURIComponent(d.product_id)}/${d.channel}/${encodeURIComponent(d.locale)}`;

function copyQuery() {
  const q = new URLSearchParams({ status: $("#f-status").value, limit: "20" });
  if ($("#f-channel").value) q.set("channel", $("#f-channel").value);
  if ($("#f-locale").value) q.set("locale", $("#f-locale").value);
  const cursor = copyPages.cursors[copyPages.index];
  if (cursor) q.set("cursor", cursor);
  return q;
}

/** `announce`: say how many are listed (not after an action, whose outcome stays on show). */
async function loadDrafts(announce = true) {
  try {
    const page = await api("GET", "/v1/copy/drafts?" + copyQuery());
    drafts = page.drafts;
    copyPages.cursors[copyPages.index + 1] = page.next_cursor || null;
    renderDrafts();
    if (announce) say(`${drafts.length} draft${drafts.length === 1 ? "" : "s"} ${$("#f-status").selectedOptions[0].text}`);
  } catch (e) {
    say("Could not list drafts: " + e.message, true);
  }
}

function renderDrafts() {
  const body = $("#drafts tbody");
  body.replaceChildren();
  $("#select-all").checked = false;
  for (const d of drafts) {
    const passed = d.validation && d.validation.passed;
    body.append(
      el("tr", { "data-key": keyOf(d) },
        el("td", {}, el("input", { type: "checkbox", class: "pick", "aria-label": `Select ${keyOf(d)}` })),
        el("td", {}, el("button", { type: "button", class: "secondary open-draft", onclick: () => openDraft(d) }, d.product_id)),
        el("td", {}, d.channel),
        el("td", {}, d.locale),
        el("td", {}, d.status.replace("_", " ")),
        el("td", { class: passed ? "passed" : "failed" }, passed ? "passed" : `${d.validation.violations.length} finding(s)`),
        el("td", { class: "text", lang: d.locale }, d.text.length > 160 ? d.text.slice(0, 160) + "…" : d.text)));
  }
  if (!drafts.length) body.append(el("tr", {}, el("td", { colspan: 7 }, "No drafts here.")));
  $("#copy-prev").disabled = copyPages.index === 0;
  $("#copy-next").disabled = !copyPages.cursors[copyPages.index + 1];
  $("#bulk-approve").disabled = $("#f-status").value !== "pending_review" || !drafts.length;
}

/** The validator's byte ranges as ranges of this JavaScript string. */
function charRanges(text, violations) {
  const bytes = new TextEncoder().encode(text);
  const dec = new TextDecoder();
  return violations
    .filter((v) => v.end > v.start && v.end <= bytes.length)
    .map((v) => ({
      from: dec.decode(bytes.slice(0, v.start)).length,
      to: dec.decode(bytes.slice(0, v.end)).length,
      v,
    }))
    .sort((a, b) => a.from - b.from);
}

/** The text with each finding marked, and the findings listed under it. */
function highlighted(text, report, lang) {
  const out = el("div", { class: "copytext", lang });
  let at = 0;
  for (const r of charRanges(text, report.violations)) {
    if (r.from < at) continue; // overlapping findings: the first one is marked
    out.append(text.slice(at, r.from), el("mark", { title: r.v.message }, text.slice(r.from, r.to)));
    at = r.to;
  }
  out.append(text.slice(at));
  return el("div", {}, out, findings(report));
}

function findings(report) {
  if (report.passed) return el("p", { class: "ok" }, `Passes every check (${report.chars} of ${report.max_chars} characters).`);
  return el("ul", { class: "findings" },
    report.violations.map((v) => el("li", {}, `${v.rule}: ${v.message}`)));
}

function factsOf(draft) {
  const plan = draft.plan;
  const product = (draft.request && draft.request.product) || {};
  const attrs = Object.entries(product.attributes || {});
  return el("div", {},
    el("h3", {}, "Product facts"),
    el("dl", {},
      ["title", "brand", "category", "price", "currency"].filter((k) => product[k] !== undefined && product[k] !== "")
        .map((k) => [el("dt", {}, k), el("dd", {}, String(product[k]))]),
      attrs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])),
    (product.selling_points || []).length
      ? el("ul", {}, product.selling_points.map((p) => el("li", {}, p))) : null,
    el("h3", {}, "Plan"),
    el("dl", {},
      el("dt", {}, "tone"), el("dd", {}, plan.tone),
      el("dt", {}, "audience"), el("dd", {}, plan.audience || "everyone"),
      el("dt", {}, "length"), el("dd", {}, `at most ${plan.max_chars} characters`)),
    el("h4", {}, "Facts to use, in order"),
    el("ol", {}, plan.facts.map((f) => el("li", {}, f.label ? `${f.label}: ${f.value}` : f.value))),
    plan.excluded.length
      ? [el("h4", {}, "Left out"), el("ul", {}, plan.excluded.map((x) => el("li", {}, `${x.fact} — ${x.reason}`)))]
      : null);
}

let checkTimer = null;
let checkSeq = 0;

async function openDraft(d) {
  try {
    const { draft } = await api("GET", draftPath(d));
    renderDraft(draft);
  } catch (e) {
    say("Could not open the draft: " + e.message, true);
  }
}

function renderDraft(draft) {
  const box = $("#draft");
  const pending = draft.status === "pending_review";
  const reviewed = async (body, done) => {
    try {
      const out = await api("POST", draftPath(draft) + "/review", { reviewer: reviewer(), ...body });
      renderDraft(out.draft);
      say(done);
      loadDrafts(false);
    } catch (e) {
      const where = e.status === 409 ? " (someone reviewed it first; reload it)" : "";
      say(`Refused: ${e.message}${where}`, true);
      if (body.decision === "edit") $("#edit-result").textContent = "Not saved: " + e.message;
    }
  };
  const editText = el("textarea", { id: "edit-text", lang: draft.locale, "aria-describedby": "edit-findings" }, draft.text);
  const live = el("div", { id: "edit-findings", "aria-live": "polite" }, findings(draft.validation));
  editText.addEventListener("input", () => {
    clearTimeout(checkTimer);
    const seq = ++checkSeq;
    checkTimer = setTimeout(async () => {
      try {
        const { validation } = await api("POST", draftPath(draft) + "/check", { text: editText.value });
        if (seq === checkSeq) live.replaceChildren(findings(validation));
      } catch (e) {
        if (seq === checkSeq) live.replaceChildren(el("p", { class: "findings" }, e.message));
      }
    }, CHECK_DELAY_MS);
  });
  const note = el("textarea", { id: "reject-note", "aria-label": "Why it is rejected" });
  box.replaceChildren(
    el("h3", { id: "draft-h" }, `${draft.plan.title} — ${draft.channel}, ${draft.locale}`),
    el("p", { class: "meta" }, `${draft.status.replace("_", " ")} · ${draft.source}${draft.fallback ? " (template fallback)" : ""}`
      + ` · ${draft.model || "no model"} · updated ${when(draft.updated_at)}`),
    el("div", { class: "columns" },
      factsOf(draft),
      el("div", {},
        el("h3", {}, "Text"),
        el("div", { id: "draft-text" }, highlighted(draft.text, draft.validation, draft.locale)),
        pending ? el("div", { class: "bar" },
          el("button", { type: "button", id: "approve", onclick: () => reviewed({ decision: "approve" }, "Approved.") }, "Approve")) : null,
        el("h3", {}, `Variants (${draft.variants.length})`),
        el("div", { class: "variants" }, draft.variants.map((v, i) =>
          el("div", { class: "card" },
            el("h4", {}, `Variant ${i + 1} · ${v.source} · score ${v.score.toFixed(2)}`),
            highlighted(v.text, v.validation, draft.locale),
            pending && i > 0 && v.validation.passed
              ? el("button", { type: "button", class: "secondary", onclick: () => reviewed({ decision: "approve", variant: i }, `Approved variant ${i + 1}.`) }, `Approve variant ${i + 1}`)
              : null))),
        pending ? el("div", {},
          el("h3", {}, el("label", { for: "edit-text" }, "Edit the text")),
          editText,
          live,
          el("div", { class: "bar" },
            el("button", { type: "button", id: "save-edit", onclick: () => reviewed({ decision: "edit", text: editText.value }, "Edit saved.") }, "Save edit")),
          el("p", { id: "edit-result", role: "alert" }),
          el("h3", {}, el("label", { for: "reject-note" }, "Reject with a note")),
          note,
          el("div", { class: "bar" },
            el("button", { type: "button", id: "reject", class: "danger", onclick: () => {
              if (!note.value.trim()) { say("Say why it is rejected first.", true); note.focus(); return; }
              reviewed({ decision: "reject", note: note.value.trim() }, "Rejected.");
            } }, "Reject"))) : null)),
    el("h3", {}, "Audit trail"),
    el("table", { id: "audit" },
      el("thead", {}, el("tr", {}, ["When", "Action", "By", "Name given", "Status", "Note"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, draft.audit.map((a) => el("tr", {},
        el("td", {}, when(a.at)), el("td", {}, a.action), el("td", {}, a.actor),
        el("td", {}, a.reviewer || ""), el("td", {}, a.status), el("td", {}, a.note || ""))))));
  box.hidden = false;
  $("#draft-h").scrollIntoView({ block: "start" });
}

async function bulkApprove() {
  const picked = [...document.querySelectorAll("#drafts tbody tr")]
    .filter((tr) => $(".pick", tr) && $(".pick", tr).checked)
    .map((tr) => drafts.find((d) => keyOf(d) === tr.dataset.key))
    .filter(Boolean)
    .map((d) => ({ product_id: d.product_id, channel: d.channel, locale: d.locale }));
  if (!picked.length) return say("Select the drafts to approve first.", true);
  try {
    const { results } = await api("POST", "/v1/copy/drafts/review", { drafts: picked, decision: "approve", reviewer: reviewer() });
    const failed = results.filter((r) => r.error);
    say(`Approved ${results.length - failed.length} of ${results.length}.`
      + failed.map((r) => ` ${r.product_id}/${r.channel}/${r.locale}: ${r.error.message}.`).join(""), failed.length > 0);
    loadDrafts(false);
  } catch (e) {
    say("Bulk approve refused: " + e.message, true);
  }
}

// ---------------------------------------------------------------- support inbox

const supportPages = { cursors: [null], index: 0 };
const ROLE_NAMES = { user: "Shopper", assistant: "Assistant", agent: "Staff", event: "Event" };

function turnItem(t) {
  const text = t.role === "event" ? `${t.event}${t.note ? ": " + t.note : ""}` : t.text || "";
  return el("li", { class: t.role },
    el("span", { class: "role" }, ROLE_NAMES[t.role] || t.role),
    t.by ? el("span", { class: "meta" }, `(${t.by}) `) : null,
    el("span", {}, text));
}

async function loadConversations(announce = true) {
  const q = new URLSearchParams({ status: $("#s-status").value, limit: "20" });
  if ($("#s-reason").value) q.set("reason", $("#s-reason").value);
  const cursor = supportPages.cursors[supportPages.index];
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("GET", "/v1/staff/conversations?" + q);
    supportPages.cursors[supportPages.index + 1] = page.next_cursor || null;
    const list = $("#conversations");
    list.replaceChildren(...page.conversations.map((c) =>
      el("li", { class: "card", "data-id": c.conversation_id },
        el("h3", {}, el("button", { type: "button", class: "secondary open-conversation", onclick: () => openConversation(c.conversation_id) },
          `Conversation ${c.conversation_id.slice(0, 12)}`)),
        el("p", { class: "meta" }, `${c.reason} · intent ${c.intent || "unknown"} · sentiment ${c.sentiment || "unknown"}`
          + ` · handed off ${whenSecs(c.handed_off_at)}${c.shopper ? " · shopper " + c.shopper : ""}`),
        el("ul", { class: "turns" }, c.turns.map(turnItem)))));
    if (!page.conversations.length) list.append(el("li", {}, "No conversations here."));
    $("#support-prev").disabled = supportPages.index === 0;
    $("#support-next").disabled = !page.next_cursor;
    if (announce) say(`${page.conversations.length} conversation(s) ${$("#s-status").selectedOptions[0].text}`);
  } catch (e) {
    say("Could not list conversations: " + e.message, true);
  }
}

async function openConversation(id) {
  try {
    renderConversation(await api("GET", `/v1/staff/conversations/${encodeURIComponent(id)}`));
  } catch (e) {
    say("Could not open the conversation: " + e.message, true);
  }
}

function renderConversation(c) {
  const box = $("#conversation");
  const open = c.status === "handed_off" || c.status === "agent_replied";
  const path = `/v1/staff/conversations/${encodeURIComponent(c.conversation_id)}`;
  const replyText = el("textarea", { id: "reply-text" });
  const resolveNote = el("textarea", { id: "resolve-note" });
  const act = async (what, body, done) => {
    try {
      await api("POST", `${path}/${what}`, body);
      say(done);
      await openConversation(c.conversation_id);
      loadConversations(false);
    } catch (e) {
      say(`Refused: ${e.message}`, true);
    }
  };
  box.replaceChildren(
    el("h3", { id: "conversation-h" }, `Conversation ${c.conversation_id}`),
    el("p", { class: "meta" }, `${c.status.replace("_", " ")} · ${c.reason || "not handed off"} · intent ${c.intent || "unknown"}`
      + ` · sentiment ${c.sentiment || "unknown"}${c.by ? " · last staff action by " + c.by : ""}`),
    el("ul", { class: "turns", id: "turns" }, c.turns.map(turnItem)),
    open ? el("form", { id: "reply-form", onsubmit: (ev) => {
      ev.preventDefault();
      act("reply", { text: replyText.value }, "Reply sent.");
    } },
      el("label", { for: "reply-text" }, "Reply to the shopper"), replyText,
      el("div", { class: "bar" }, el("button", { type: "submit", id: "send-reply" }, "Send reply"))) : null,
    open ? el("form", { id: "resolve-form", onsubmit: (ev) => {
      ev.preventDefault();
      act("resolve", resolveNote.value.trim() ? { note: resolveNote.value.trim() } : {}, "Resolved.");
    } },
      el("label", { for: "resolve-note" }, "Note for the record (optional)"), resolveNote,
      el("div", { class: "bar" }, el("button", { type: "submit", id: "resolve", class: "secondary" }, "Resolve"))) : null);
  box.hidden = false;
  $("#conversation-h").scrollIntoView({ block: "start" });
}

// ---------------------------------------------------------------- start

function wire() {
  $("#signin-token").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    try {
      await api("GET", "/v1/copy/drafts?limit=1");
      say("Signed in.");
      signedIn();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      say("Sign-in refused: " + e.message, true);
      showSignIn();
    }
  });
  $("#cognito-sign-in").addEventListener("click", () => cognitoStart().catch((e) => say(e.message, true)));
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (config.sign_in.mode === "cognito") {
      // Also end the hosted sign-in's session, or the next sign-in would skip the password.
      const url = new URL(config.sign_in.domain + "/logout");
      url.search = new URLSearchParams({ client_id: config.sign_in.client_id, logout_uri: redirectUri() }).toString();
      location.assign(url.toString());
      return;
    }
    say("Signed out.");
    showSignIn();
  });
  $("#reviewer").value = sessionStorage.getItem(NAME_KEY) || "";
  $("#reviewer").addEventListener("change", () => sessionStorage.setItem(NAME_KEY, $("#reviewer").value.trim()));
  $("#copy-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    copyPages.cursors = [null];
    copyPages.index = 0;
    $("#draft").hidden = true;
    loadDrafts();
  });
  $("#copy-next").addEventListener("click", () => { copyPages.index += 1; loadDrafts(); });
  $("#copy-prev").addEventListener("click", () => { copyPages.index = Math.max(0, copyPages.index - 1); loadDrafts(); });
  $("#select-all").addEventListener("change", (ev) => {
    for (const box of document.querySelectorAll("#drafts .pick")) box.checked = ev.target.checked;
  });
  $("#bulk-approve").addEventListener("click", bulkApprove);
  $("#support-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    supportPages.cursors = [null];
    supportPages.index = 0;
    $("#conversation").hidden = true;
    loadConversations();
  });
  $("#support-next").addEventListener("click", () => { supportPages.index += 1; loadConversations(); });
  $("#support-prev").addEventListener("click", () => { supportPages.index = Math.max(0, supportPages.index - 1); loadConversations(); });
  window.addEventListener("hashchange", route);
}

async function start() {
  wire();
  try {
    const resp = await fetch("/staff/config.json");
    if (resp.ok) config = await resp.json();
  } catch (_) {
    say("Could not read the console settings; using the staff token.", true);
  }
  if (config.sign_in.mode === "cognito") {
    try {
      await cognitoFinish();
    } catch (e) {
      say(e.message, true);
    }
  }
  if (token()) signedIn();
  else showSignIn();
}

document.addEventListener("DOMContentLoaded", start);

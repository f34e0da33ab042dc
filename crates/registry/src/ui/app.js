// wharf registry's web UI: a small single-page app over the REST API (/api/v2.0).
// Every list is one page cut by the server (page, page_size, q); nothing loads a whole list.
// Text from the server is only ever set as text (textContent), never parsed as HTML.
"use strict";

const API = "/api/v2.0";
const PAGE_SIZE = 10;
const ROLES = { 1: "ProjectAdmin", 4: "Maintainer", 2: "Developer", 3: "Guest", 5: "LimitedGuest" };
let me = null; // the logged-in user (users/current)

// ---------------------------------------------------------------------------------------
// Small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return "";
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A call to the REST API: the session cookie goes by itself, the CSRF token by header on
// anything that changes state. Returns { data, total, resp }.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-Harbor-CSRF-Token"] = cookie("__csrf");
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(API + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!resp.ok) {
    const msg = data && data.errors && data.errors[0] ? data.errors[0].message : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, msg);
  }
  const total = resp.headers.get("X-Total-Count");
  return { data, total: total === null ? null : Number(total), resp };
}

function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 6000);
}

function fail(e) {
  if (e instanceof ApiError && e.status === 401) { location.hash = "#/login"; return; }
  toast(e.message || String(e), true);
}

function size(n) {
  if (n === null || n === undefined || n < 0) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(2)) + " " + units[i];
}

function when(t) {
  if (!t || t.startsWith("0001-")) return "—";
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function enc(s) { return encodeURIComponent(s); }

function query() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

function go(hash) { location.hash = hash; }

function main(...children) {
  const m = document.getElementById("main");
  m.replaceChildren(...children);
  return m;
}

function notAvailable(what) {
  return h("p", { class: "na", "data-na": "1" }, `${what}: not available on this registry.`);
}

// A pager under a list: "page N of M" with previous and next, driven by X-Total-Count.
function pager(page, total, onPage) {
  const pages = Math.max(1, Math.ceil((total || 0) / PAGE_SIZE));
  return h("div", { class: "pager" },
    h("button", { disabled: page <= 1, onclick: () => onPage(page - 1) }, "‹ Previous"),
    h("span", { class: "pageinfo" }, `Page ${page} of ${pages} · ${total || 0} in all`),
    h("button", { disabled: page >= pages, onclick: () => onPage(page + 1) }, "Next ›"));
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing here yet.");
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (_) {
    const ta = h("textarea", { class: "offscreen" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
  }
  if (button) button.setAttribute("data-copied", text);
  toast(ok ? `Copied: ${text}` : `Copy this: ${text}`, !ok);
}

// ---------------------------------------------------------------------------------------
// Header: navigation and who is logged in

function renderHeader() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!me) { nav.replaceChildren(); who.replaceChildren(); return; }
  const links = [h("a", { href: "#/projects" }, "Projects")];
  if (me.sysadmin_flag) {
    links.push(h("a", { href: "#/users" }, "Users"), h("a", { href: "#/audit" }, "Audit log"),
      h("a", { href: "#/gc" }, "Garbage collection"));
  }
  nav.replaceChildren(...links);
  who.replaceChildren(h("span", { id: "username" }, me.username + (me.sysadmin_flag ? " (admin)" : "")),
    h("button", { id: "logout", onclick: logout }, "Log out"));
}

async function logout() {
  await fetch("/c/log_out", { credentials: "same-origin" });
  me = null;
  renderHeader();
  go("#/login");
}

async function loadMe() {
  try {
    me = (await api("GET", "/users/current")).data;
  } catch (e) {
    me = null;
  }
  renderHeader();
}

// ---------------------------------------------------------------------------------------
// Login

function loginPage() {
  const user = h("input", { id: "principal", name: "principal", autocomplete: "username", required: true });
  const pw = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const err = h("p", { id: "login-error", class: "error" });
  const form = h("form", { class: "card login", onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const body = new URLSearchParams({ principal: user.value, password: pw.value });
    const resp = await fetch("/c/login", { method: "POST", body, credentials: "same-origin" });
    if (!resp.ok) {
      let msg = `HTTP ${resp.status}`;
      try { msg = (await resp.json()).errors[0].message; } catch (_) { /* keep the status */ }
      err.textContent = msg;
      return;
    }
    await loadMe();
    go("#/projects");
  } },
  h("h1", {}, "Log in"),
  h("label", {}, "Username", user),
  h("label", {}, "Password", pw),
  h("button", { type: "submit", id: "login-submit" }, "Log in"),
  err);
  main(form);
  user.focus();
}

// ---------------------------------------------------------------------------------------
// Projects

async function projectsPage() {
  const q = query();
  const page = Number(q.get("page") || 1);
  const name = q.get("name") || "";
  const search = h("input", { id: "project-search", placeholder: "Search projects", value: name });
  const searchForm = h("form", { class: "inline", onsubmit: (ev) => {
    ev.preventDefault();
    go(`#/projects?name=${enc(search.value)}&page=1`);
  } }, search, h("button", { type: "submit" }, "Search"));
  const newName = h("input", { id: "new-project-name", placeholder: "project name" });
  const newPublic = h("input", { id: "new-project-public", type: "checkbox" });
  const create = h("form", { class: "inline", id: "new-project", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/projects", { project_name: newName.value, metadata: { public: String(newPublic.checked) } });
      toast(`Project ${newName.value} created`);
      go(`#/projects/${enc(newName.value)}/repositories`);
    } catch (e) { fail(e); }
  } }, newName, h("label", { class: "check" }, newPublic, "public"), h("button", { type: "submit" }, "New project"));
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(h("h1", {}, "Projects"), h("div", { class: "bar" }, searchForm, create), list);
  try {
    const path = `/projects?page=${page}&page_size=${PAGE_SIZE}` + (name ? `&name=${enc(name)}` : "");
    const { data, total } = await api("GET", path);
    // Quota usage per project of this page only.
    const summaries = await Promise.all(data.map((p) =>
      api("GET", `/projects/${p.project_id}/summary`).then((r) => r.data).catch(() => null)));
    const rows = data.map((p, i) => {
      const s = summaries[i];
      const quota = s && s.quota ? s.quota : null;
      const hard = quota ? quota.hard.storage : -1;
      const used = quota ? quota.used.storage : null;
      return h("tr", { "data-project": p.name },
        h("td", {}, h("a", { href: `#/projects/${enc(p.name)}/repositories` }, p.name)),
        h("td", {}, p.metadata && p.metadata.public === "true" ? "Public" : "Private"),
        h("td", {}, ROLES[p.current_user_role_id] || (me && me.sysadmin_flag ? "System admin" : "—")),
        h("td", { class: "num" }, String(p.repo_count)),
        h("td", {}, used === null ? "—" : `${size(used)} of ${hard < 0 ? "unlimited" : size(hard)}`),
        h("td", {}, when(p.creation_time)));
    });
    list.replaceChildren(
      table(["Name", "Access", "Role", "Repositories", "Quota used", "Created"], rows, "No projects found."),
      pager(page, total, (n) => go(`#/projects?name=${enc(name)}&page=${n}`)));
  } catch (e) { fail(e); list.replaceChildren(); }
}

async function loadProject(name) {
  return (await api("GET", `/projects/${enc(name)}`, undefined)).data;
}

function projectTabs(project, active) {
  const tab = (key, label) => h("a", { href: `#/projects/${enc(project)}/${key}`, class: key === active ? "tab active" : "tab" }, label);
  return h("div", { class: "tabs" }, tab("repositories", "Repositories"), tab("members", "Members"),
    tab("robots", "Robot accounts"), tab("policies", "Policies"), tab("logs", "Logs"));
}

function projectHeader(p, active) {
  return [h("p", { class: "crumbs" }, h("a", { href: "#/projects" }, "Projects"), " / ", p.name),
    h("h1", {}, p.name, h("span", { class: "badge" }, p.metadata && p.metadata.public === "true" ? "public" : "private")),
    projectTabs(p.name, active)];
}

async function repositoriesPage(name) {
  const q = query();
  const page = Number(q.get("page") || 1);
  const filter = q.get("q") || "";
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const search = h("input", { id: "repo-search", placeholder: "Search repositories", value: filter });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(...projectHeader(p, "repositories"),
    h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); go(`#/projects/${enc(name)}/repositories?q=${enc(search.value)}`); } },
      search, h("button", { type: "submit" }, "Search")),
    list);
  try {
    const qp = filter ? `&q=${enc("name=~" + filter)}` : "";
    const { data, total } = await api("GET", `/projects/${enc(name)}/repositories?page=${page}&page_size=${PAGE_SIZE}${qp}`);
    const rows = data.map((r) => {
      const short = r.name.startsWith(name + "/") ? r.name.slice(name.length + 1) : r.name;
      return h("tr", { "data-repo": r.name },
        h("td", {}, h("a", { href: `#/projects/${enc(name)}/repositories/${enc(short)}` }, r.name)),
        h("td", { class: "num" }, String(r.artifact_count ?? "—")),
        h("td", { class: "num" }, String(r.pull_count ?? 0)),
        h("td", {}, when(r.update_time)));
    });
    list.replaceChildren(table(["Name", "Artifacts", "Pulls", "Last modified"], rows, "No repositories yet: push an image to this project."),
      pager(page, total, (n) => go(`#/projects/${enc(name)}/repositories?q=${enc(filter)}&page=${n}`)));
  } catch (e) { fail(e); list.replaceChildren(); }
}

function mayDeleteArtifacts(p) {
  return (me && me.sysadmin_flag) || p.current_user_role_id === 1 || p.current_user_role_id === 4;
}

function mayManageMembers(p) {
  return (me && me.sysadmin_flag) || p.current_user_role_id === 1;
}

async function artifactsPage(name, repo) {
  const q = query();
  const page = Number(q.get("page") || 1);
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const full = `${name}/${repo}`;
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(h("p", { class: "crumbs" }, h("a", { href: "#/projects" }, "Projects"), " / ",
    h("a", { href: `#/projects/${enc(name)}/repositories` }, name), " / ", repo),
  h("h1", {}, full), list);
  const canDelete = mayDeleteArtifacts(p);
  const load = async () => {
    try {
      const { data, total } = await api("GET",
        `/projects/${enc(name)}/repositories/${enc(repo)}/artifacts?with_tag=true&page=${page}&page_size=${PAGE_SIZE}`);
      const rows = data.map((a) => {
        const tags = (a.tags || []).map((t) => t.name);
        const ref = tags.length ? `:${tags[0]}` : `@${a.digest}`;
        const pull = `docker pull ${location.host}/${full}${ref}`;
        const attrs = a.extra_attrs || {};
        const platform = attrs.os ? `${attrs.os}/${attrs.architecture || "?"}` : (a.type === "INDEX" ? "multi-platform" : "—");
        const copy = h("button", { class: "copy", title: pull, onclick: (ev) => copyText(pull, ev.currentTarget) }, "Copy pull command");
        const del = canDelete ? h("button", { class: "danger delete", onclick: async () => {
          if (!confirm(`Delete ${full}@${a.digest} and its tags?`)) return;
          try {
            await api("DELETE", `/projects/${enc(name)}/repositories/${enc(repo)}/artifacts/${enc(a.digest)}`);
            toast(`Deleted ${a.digest.slice(0, 19)}`);
            load();
          } catch (e) { fail(e); }
        } }, "Delete") : null;
        return h("tr", { "data-digest": a.digest },
          h("td", { class: "tags" }, tags.length ? tags.map((t) => h("span", { class: "tag" }, t)) : h("span", { class: "muted" }, "untagged")),
          h("td", { class: "mono", title: a.digest }, a.digest.slice(0, 19)),
          h("td", { class: "num size" }, size(a.size)),
          h("td", {}, platform),
          h("td", {}, when(a.push_time)),
          h("td", {}, when(a.pull_time)),
          h("td", { class: "actions" }, copy, del));
      });
      list.replaceChildren(table(["Tags", "Digest", "Size", "OS/Arch", "Pushed", "Pulled", ""], rows, "No artifacts."),
        pager(page, total, (n) => go(`#/projects/${enc(name)}/repositories/${enc(repo)}?page=${n}`)));
    } catch (e) { fail(e); list.replaceChildren(); }
  };
  await load();
}

function roleSelect(id, value) {
  const s = h("select", { id }, Object.entries(ROLES).map(([v, label]) => h("option", { value: v }, label)));
  if (value) s.value = String(value);
  return s;
}

async function membersPage(name) {
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const manage = mayManageMembers(p);
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const user = h("input", { id: "member-name", placeholder: "username" });
  const role = roleSelect("member-role", 2);
  const add = manage ? h("form", { class: "inline", id: "add-member", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", `/projects/${enc(name)}/members`, { role_id: Number(role.value), member_user: { username: user.value } });
      toast(`${user.value} added as ${ROLES[role.value]}`);
      user.value = "";
      load();
    } catch (e) { fail(e); }
  } }, user, role, h("button", { type: "submit" }, "Add member")) : null;
  main(...projectHeader(p, "members"), add, list);
  const load = async () => {
    try {
      const { data, total } = await api("GET", `/projects/${enc(name)}/members?page=1&page_size=100`);
      const rows = data.map((m) => {
        const sel = roleSelect(`role-${m.id}`, m.role_id);
        sel.disabled = !manage;
        sel.addEventListener("change", async () => {
          try {
            await api("PUT", `/projects/${enc(name)}/members/${m.id}`, { role_id: Number(sel.value) });
            toast(`${m.entity_name} is now ${ROLES[sel.value]}`);
          } catch (e) { fail(e); load(); }
        });
        return h("tr", { "data-member": m.entity_name },
          h("td", {}, m.entity_name), h("td", {}, m.entity_type === "g" ? "group" : "user"), h("td", {}, sel),
          h("td", {}, manage ? h("button", { class: "danger", onclick: async () => {
            if (!confirm(`Remove ${m.entity_name} from ${name}?`)) return;
            try { await api("DELETE", `/projects/${enc(name)}/members/${m.id}`); load(); } catch (e) { fail(e); }
          } }, "Remove") : null));
      });
      list.replaceChildren(table(["Member", "Type", "Role", ""], rows),
        total > 100 ? h("p", { class: "muted" }, `Showing 100 of ${total}.`) : null);
    } catch (e) { fail(e); list.replaceChildren(); }
  };
  await load();
}

async function robotsPage(name) {
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const secretBox = h("div", { id: "robot-secret" });
  const robotName = h("input", { id: "robot-name", placeholder: "robot name" });
  const days = h("input", { id: "robot-days", type: "number", value: "-1", min: "-1", title: "days until it expires; -1: never" });
  const acts = ["pull", "push", "delete"].map((a) => h("input", { type: "checkbox", value: a, checked: a === "pull", id: `robot-${a}` }));
  const form = mayManageMembers(p) ? h("form", { class: "inline", id: "new-robot", onsubmit: async (ev) => {
    ev.preventDefault();
    const access = acts.filter((c) => c.checked).map((c) => ({ resource: "repository", action: c.value }));
    try {
      const { data } = await api("POST", "/robots", { name: robotName.value, level: "project", duration: Number(days.value),
        permissions: [{ kind: "project", namespace: name, access }] });
      // The secret is shown this once: the server keeps only its hash.
      const secret = h("code", { id: "robot-secret-value" }, data.secret);
      secretBox.replaceChildren(h("div", { class: "card secret" },
        h("p", {}, h("strong", {}, data.name), " was created. Copy its secret now: it is not shown again."),
        secret, h("button", { onclick: (e) => copyText(data.secret, e.currentTarget) }, "Copy secret"),
        h("button", { onclick: () => secretBox.replaceChildren() }, "Done")));
      load();
    } catch (e) { fail(e); }
  } }, robotName, h("label", {}, "expires in days ", days), acts.map((c) => h("label", { class: "check" }, c, c.value)),
  h("button", { type: "submit" }, "New robot account")) : null;
  main(...projectHeader(p, "robots"), form, secretBox, list);
  const load = async () => {
    try {
      const { data } = await api("GET", `/projects/${enc(name)}/robots?page=1&page_size=100`);
      const rows = data.map((r) => h("tr", { "data-robot": r.name },
        h("td", {}, r.name), h("td", {}, r.disable ? "disabled" : "enabled"),
        h("td", {}, r.expires_at && r.expires_at > 0 ? when(new Date(r.expires_at * 1000).toISOString()) : "never"),
        h("td", {}, (r.permissions || []).flatMap((x) => (x.access || []).map((a) => a.action)).join(", ")),
        h("td", {}, r.description || "")));
      list.replaceChildren(table(["Name", "State", "Expires", "Permissions", "Description"], rows, "No robot accounts."));
    } catch (e) { fail(e); list.replaceChildren(); }
  };
  await load();
}

// policiesPage (the Policies tab) is in policies.js.

// An audit log page (a project's or the system's): Harbor's AuditLog shape.
async function auditTable(path, into, hashBase) {
  const page = Number(query().get("page") || 1);
  try {
    const { data, total } = await api("GET", `${path}?page=${page}&page_size=${PAGE_SIZE}`);
    const rows = (data || []).map((l) => h("tr", {},
      h("td", {}, l.username), h("td", {}, l.resource), h("td", {}, l.resource_type),
      h("td", {}, l.operation), h("td", {}, when(l.op_time))));
    into.replaceChildren(table(["User", "Resource", "Type", "Operation", "Time"], rows, "No log entries."),
      pager(page, total === null ? rows.length : total, (n) => go(`${hashBase}?page=${n}`)));
  } catch (e) {
    if (e.status === 404) into.replaceChildren(notAvailable("The audit log")); else fail(e);
  }
}

async function logsPage(name) {
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const into = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(...projectHeader(p, "logs"), into);
  await auditTable(`/projects/${enc(name)}/logs`, into, `#/projects/${enc(name)}/logs`);
}

// ---------------------------------------------------------------------------------------
// Administration

async function usersPage() {
  const q = query();
  const page = Number(q.get("page") || 1);
  const name = q.get("username") || "";
  const search = h("input", { id: "user-search", placeholder: "Search users", value: name });
  const fields = ["username", "email", "realname", "password"].map((f) =>
    h("input", { id: `new-user-${f}`, placeholder: f, type: f === "password" ? "password" : "text" }));
  const create = h("form", { class: "inline", id: "new-user", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = Object.fromEntries(fields.map((f) => [f.placeholder, f.value]));
    try {
      await api("POST", "/users", body);
      toast(`User ${body.username} created`);
      fields.forEach((f) => { f.value = ""; });
      usersPage();
    } catch (e) { fail(e); }
  } }, fields, h("button", { type: "submit" }, "New user"));
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(h("h1", {}, "Users"),
    h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); go(`#/users?username=${enc(search.value)}`); } },
      search, h("button", { type: "submit" }, "Search")),
    create, list);
  try {
    const { data, total } = await api("GET", `/users?page=${page}&page_size=${PAGE_SIZE}` + (name ? `&username=${enc(name)}` : ""));
    const rows = data.map((u) => h("tr", { "data-user": u.username },
      h("td", {}, u.username), h("td", {}, u.email || ""), h("td", {}, u.realname || ""),
      h("td", {}, u.sysadmin_flag ? "yes" : "no"), h("td", {}, when(u.creation_time)),
      h("td", {}, u.username === me.username ? null : h("button", { class: "danger", onclick: async () => {
        if (!confirm(`Delete user ${u.username}?`)) return;
        try { await api("DELETE", `/users/${u.user_id}`); usersPage(); } catch (e) { fail(e); }
      } }, "Delete"))));
    list.replaceChildren(table(["Username", "Email", "Name", "Admin", "Created", ""], rows),
      pager(page, total, (n) => go(`#/users?username=${enc(name)}&page=${n}`)));
  } catch (e) { fail(e); list.replaceChildren(); }
}

async function auditPage() {
  const into = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main(h("h1", {}, "Audit log"), into);
  await auditTable("/audit-logs", into, "#/audit");
}

async function gcPage() {
  const schedule = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const history = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const run = h("button", { id: "gc-run", onclick: async () => {
    try {
      await api("POST", "/system/gc/schedule", { schedule: { type: "Manual" } });
      toast("Garbage collection started");
      gcPage();
    } catch (e) { if (e.status === 404) toast("Garbage collection is not available on this registry", true); else fail(e); }
  } }, "Run GC now");
  main(h("h1", {}, "Garbage collection"), run, h("h2", {}, "Schedule"), schedule, h("h2", {}, "History"), history);
  try {
    const { data } = await api("GET", "/system/gc/schedule");
    const s = data && data.schedule;
    schedule.replaceChildren(h("p", {}, s && s.type && s.type !== "None" ? `${s.type}${s.cron ? " (" + s.cron + ")" : ""}` : "Not scheduled."));
  } catch (e) {
    if (e.status === 404) schedule.replaceChildren(notAvailable("The GC schedule")); else fail(e);
  }
  const page = Number(query().get("page") || 1);
  try {
    const { data, total } = await api("GET", `/system/gc?page=${page}&page_size=${PAGE_SIZE}`);
    const rows = (data || []).map((j) => h("tr", {},
      h("td", {}, String(j.id)), h("td", {}, j.job_status || ""), h("td", {}, j.job_kind || (j.schedule && j.schedule.type) || ""),
      h("td", {}, when(j.creation_time)), h("td", {}, when(j.update_time))));
    history.replaceChildren(table(["Id", "Status", "Kind", "Started", "Updated"], rows, "GC has not run yet."),
      pager(page, total === null ? rows.length : total, (n) => go(`#/gc?page=${n}`)));
  } catch (e) {
    if (e.status === 404) history.replaceChildren(notAvailable("The GC history")); else fail(e);
  }
}

// ---------------------------------------------------------------------------------------
// Routing: #/login, #/projects, #/projects/P/{repositories,members,robots,policies,logs},
// #/projects/P/repositories/R..., #/users, #/audit, #/gc

async function route() {
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/projects";
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "login") { loginPage(); return; }
  if (!me) await loadMe();
  if (!me) { go("#/login"); return; }
  try {
    if (parts[0] === "projects" && parts.length === 1) return await projectsPage();
    if (parts[0] === "projects" && parts.length >= 2) {
      const [, p, tab, ...rest] = parts;
      if (!tab || tab === "repositories") {
        if (rest.length) return await artifactsPage(p, rest.join("/"));
        return await repositoriesPage(p);
      }
      if (tab === "members") return await membersPage(p);
      if (tab === "robots") return await robotsPage(p);
      if (tab === "policies") return await policiesPage(p);
      if (tab === "logs") return await logsPage(p);
    }
    if (parts[0] === "users" && me.sysadmin_flag) return await usersPage();
    if (parts[0] === "audit" && me.sysadmin_flag) return await auditPage();
    if (parts[0] === "gc" && me.sysadmin_flag) return await gcPage();
    main(h("h1", {}, "Not found"), h("p", {}, `Nothing at ${path}.`));
  } catch (e) { fail(e); }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  // Harbor's own paths (/harbor/projects) land on the matching page.
  if (!location.hash && location.pathname.startsWith("/harbor/")) {
    location.hash = "#/" + location.pathname.slice("/harbor/".length);
  }
  route();
});

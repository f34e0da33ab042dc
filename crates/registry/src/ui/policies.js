// wharf registry's web UI, a project's Policies tab: its tag immutability rules (list, add,
// enable or disable, delete) and its tag retention policy (rules added, edited, disabled and
// deleted, the cron schedule, a dry run or a real run now, and the runs with what each
// deleted or would delete, and each task's log). A button shows only where
// /users/current/permissions says the caller may use it (Harbor's table: immutability for
// project admins and maintainers, retention for developers too); the server checks every
// call again. Uses app.js's helpers (h, api, …).
"use strict";

const DECORATIONS = {
  repo: [["repoMatches", "matching"], ["repoExcludes", "excluding"]],
  tag: [["matches", "matching"], ["excludes", "excluding"]],
};
const FINISHED = ["Success", "Error", "Stopped"];

// What the caller may do in project p: can("tag-retention", "update").
async function projectPermissions(p) {
  const scope = enc(`/project/${p.project_id}`);
  const { data } = await api("GET", `/users/current/permissions?scope=${scope}&relative=true`);
  const granted = new Set((data || []).map((x) => `${x.resource}:${x.action}`));
  return (resource, action) => granted.has(`${resource}:${action}`);
}

function decorationName(d) {
  const all = DECORATIONS.repo.concat(DECORATIONS.tag);
  const found = all.find(([v]) => v === d);
  return found ? found[1] : d;
}

function selectorText(list) {
  return (list || []).map((s) => `${decorationName(s.decoration)} ${s.pattern}`).join(", ");
}

function decorationSelect(id, kind, value) {
  const s = h("select", { id }, DECORATIONS[kind].map(([v, label]) => h("option", { value: v }, label)));
  if (value) s.value = value;
  return s;
}

function doublestar(decoration, pattern, extras) {
  const s = { kind: "doublestar", decoration, pattern };
  if (extras !== undefined) s.extras = JSON.stringify(extras);
  return s;
}

function muted(id, text) {
  return h("p", { class: "muted", id }, text);
}

// ---------------------------------------------------------------------------------------
// Tag immutability

async function immutabilitySection(p, can, into) {
  if (!can("immutable-tag", "list")) {
    into.replaceChildren(muted("imm-hidden", "Your role in this project may not see its tag immutability rules."));
    return;
  }
  const base = `/projects/${enc(p.name)}/immutabletagrules`;
  const list = h("div", { id: "imm-rules" }, muted(null, "Loading…"));
  let form = null;
  if (can("immutable-tag", "create")) {
    const repoDec = decorationSelect("imm-repo-dec", "repo");
    const repo = h("input", { id: "imm-repo", value: "**", required: true, title: "repository pattern inside the project (doublestar: *, **, ?, {a,b})" });
    const tagDec = decorationSelect("imm-tag-dec", "tag");
    const tag = h("input", { id: "imm-tag", placeholder: "tag pattern, e.g. v*", required: true });
    form = h("form", { class: "inline", id: "imm-add", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {
        project_id: p.project_id, disabled: false, priority: 0, action: "immutable", template: "immutable_template",
        tag_selectors: [doublestar(tagDec.value, tag.value)],
        scope_selectors: { repository: [doublestar(repoDec.value, repo.value)] },
      };
      try {
        await api("POST", base, body);
        toast(`Immutability rule added: tags ${decorationName(tagDec.value)} ${tag.value}`);
        repoDec.value = "repoMatches";
        repo.value = "**";
        tagDec.value = "matches";
        tag.value = "";
        await load();
      } catch (e) { fail(e); }
    } }, "Repositories", repoDec, repo, "tags", tagDec, tag, h("button", { type: "submit" }, "Add rule"));
  }
  into.replaceChildren(list, form);
  const load = async () => {
    try {
      const { data } = await api("GET", `${base}?page=1&page_size=100`);
      const rows = (data || []).map((r) => {
        const toggle = can("immutable-tag", "update") ? h("button", { class: "imm-toggle", onclick: async () => {
          try {
            await api("PUT", `${base}/${r.id}`, Object.assign({}, r, { disabled: !r.disabled }));
            toast(`Rule ${r.id} ${r.disabled ? "enabled" : "disabled"}`);
            await load();
          } catch (e) { fail(e); }
        } }, r.disabled ? "Enable" : "Disable") : null;
        const del = can("immutable-tag", "delete") ? h("button", { class: "danger imm-delete", onclick: async () => {
          if (!confirm(`Delete immutability rule ${r.id}?`)) return;
          try {
            await api("DELETE", `${base}/${r.id}`);
            toast(`Rule ${r.id} deleted`);
            await load();
          } catch (e) { fail(e); }
        } }, "Delete") : null;
        return h("tr", { "data-imm-rule": String(r.id) },
          h("td", {}, selectorText(r.scope_selectors && r.scope_selectors.repository)),
          h("td", {}, selectorText(r.tag_selectors)),
          h("td", { class: "state" }, r.disabled ? "disabled" : "enabled"),
          h("td", { class: "actions" }, toggle, del));
      });
      list.replaceChildren(table(["Repositories", "Tags", "State", ""], rows,
        "No immutability rules: every tag can be pushed over and deleted."));
    } catch (e) { fail(e); list.replaceChildren(); }
  };
  await load();
}

// ---------------------------------------------------------------------------------------
// Tag retention

// "the most recently pushed # artifacts" with its number.
function ruleText(rule, templates) {
  const t = templates.find((x) => x.rule_template === rule.template);
  const n = rule.params ? rule.params[rule.template] : undefined;
  const text = t ? t.display_text : rule.template;
  return "Retain " + (n === undefined ? text : text.replace("#", String(n)));
}

function untaggedOf(sel) {
  try { return Boolean(JSON.parse(sel.extras || "{}").untagged); } catch (_) { return false; }
}

// A task's log, one line per artifact: "digest repo:tags VERDICT".
function verdictRows(log) {
  const verdicts = ["DELETE (dry run)", "DELETE", "IMMUTABLE", "RETAIN"];
  return String(log || "").split("\n").filter((l) => l.trim()).map((line) => {
    const v = verdicts.find((x) => line.endsWith(" " + x));
    if (!v) return h("tr", { class: "verdict-other" }, h("td", { colspan: "3" }, line));
    const rest = line.slice(0, line.length - v.length - 1);
    const space = rest.indexOf(" ");
    const digest = space < 0 ? "" : rest.slice(0, space);
    const artifact = space < 0 ? rest : rest.slice(space + 1);
    const cls = v === "DELETE" ? "verdict-deleted" : v.startsWith("DELETE") ? "verdict-would-delete" : "verdict-kept";
    const said = v === "DELETE" ? "deleted" : v.startsWith("DELETE") ? "would be deleted" : v === "IMMUTABLE" ? "kept (immutable)" : "retained";
    return h("tr", { class: cls, "data-artifact": artifact },
      h("td", {}, artifact), h("td", { class: "mono", title: digest }, digest.slice(0, 19)), h("td", { class: "verdict" }, said));
  });
}

async function executionResult(policyId, exec, into) {
  into.replaceChildren(muted(null, "Loading…"));
  try {
    const base = `/retentions/${enc(policyId)}/executions/${exec.id}/tasks`;
    const { data } = await api("GET", `${base}?page=1&page_size=100`);
    const tasks = data || [];
    if (!tasks.length) {
      into.replaceChildren(muted(null, FINISHED.includes(exec.status) ? "No repository matched a rule." : `${exec.status}…`));
      return;
    }
    const logs = await Promise.all(tasks.map((t) =>
      api("GET", `${base}/${t.id}`).then((r) => r.data).catch((e) => `error: ${e.message}`)));
    into.replaceChildren(...tasks.map((t, i) => h("div", { class: "task", "data-task-repo": t.repository },
      h("p", {}, h("strong", {}, t.repository), ` — ${t.status}: ${t.retained} of ${t.total} artifacts kept `,
        h("a", { href: API + `${base}/${t.id}`, target: "_blank", rel: "noopener" }, "log")),
      table(["Artifact", "Digest", exec.dry_run ? "Dry run" : "Result"], verdictRows(logs[i]), "No artifacts."))));
  } catch (e) { fail(e); into.replaceChildren(); }
}

async function retentionSection(p, can, into) {
  if (!can("tag-retention", "read")) {
    into.replaceChildren(muted("ret-hidden", "Your role in this project may not see its tag retention policy."));
    return;
  }
  let id = p.metadata && p.metadata.retention_id;
  let policy = null;
  let templates = [];
  let editing = -1; // the index of the rule the form edits; -1: a new one
  const mayEdit = can("tag-retention", "create") && can("tag-retention", "update");
  const mayRun = can("tag-retention", "update") && can("tag-retention", "operate");
  const rules = h("div", { id: "ret-rules" }, muted(null, "Loading…"));
  const schedule = h("div", { id: "ret-schedule" });
  const runs = h("div", { id: "ret-runs" });
  const history = h("div", { id: "ret-history" });
  try {
    templates = (await api("GET", "/retentions/metadatas")).data.templates || [];
    if (id) policy = (await api("GET", `/retentions/${enc(id)}`)).data;
  } catch (e) { fail(e); into.replaceChildren(); return; }

  // Writes the policy with `rules` and `cron`: made on the first change, replaced after.
  const save = async (newRules, cron) => {
    const body = {
      algorithm: "or", rules: newRules,
      trigger: { kind: "Schedule", settings: { cron }, references: {} },
      scope: { level: "project", ref: p.project_id },
    };
    if (id) {
      await api("PUT", `/retentions/${enc(id)}`, Object.assign({ id: Number(id) }, body));
    } else {
      const { resp } = await api("POST", "/retentions", body);
      id = (resp.headers.get("Location") || "").split("/").pop();
    }
    policy = (await api("GET", `/retentions/${enc(id)}`)).data;
  };
  const currentRules = () => (policy && policy.rules) || [];
  const currentCron = () => (policy && policy.trigger && policy.trigger.settings && policy.trigger.settings.cron) || "";

  // The rule form: a new rule, or the one being edited.
  const template = h("select", { id: "ret-template" }, templates.map((t) =>
    h("option", { value: t.rule_template }, t.display_text)));
  const param = h("input", { id: "ret-param", type: "number", min: "0", value: "10", title: "the rule's number (#)" });
  const repoDec = decorationSelect("ret-repo-dec", "repo");
  const repo = h("input", { id: "ret-repo", value: "**", required: true, title: "repository pattern inside the project" });
  const tagDec = decorationSelect("ret-tag-dec", "tag");
  const tag = h("input", { id: "ret-tag", value: "**", required: true, title: "tag pattern" });
  const untagged = h("input", { id: "ret-untagged", type: "checkbox" });
  const submit = h("button", { type: "submit", id: "ret-rule-submit" }, "Add rule");
  const cancel = h("button", { type: "button", id: "ret-rule-cancel", class: "copy", hidden: true, onclick: () => edit(-1) }, "Cancel");
  const syncParam = () => {
    const t = templates.find((x) => x.rule_template === template.value);
    param.disabled = !(t && t.params && t.params.length);
  };
  template.addEventListener("change", syncParam);
  syncParam();
  const edit = (i) => {
    editing = i;
    const r = currentRules()[i];
    if (r) {
      template.value = r.template;
      param.value = String(r.params && r.params[r.template] !== undefined ? r.params[r.template] : 0);
      const rs = (r.scope_selectors && r.scope_selectors.repository && r.scope_selectors.repository[0]) || {};
      const ts = (r.tag_selectors && r.tag_selectors[0]) || {};
      repoDec.value = rs.decoration || "repoMatches";
      repo.value = rs.pattern || "**";
      tagDec.value = ts.decoration || "matches";
      tag.value = ts.pattern || "**";
      untagged.checked = untaggedOf(ts);
    } else {
      repo.value = "**";
      tag.value = "**";
      untagged.checked = false;
    }
    syncParam();
    submit.textContent = r ? `Save rule ${i + 1}` : "Add rule";
    cancel.hidden = !r;
  };
  const ruleForm = mayEdit ? h("form", { class: "inline", id: "ret-rule-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const t = templates.find((x) => x.rule_template === template.value);
    const rule = {
      disabled: false, priority: 0, action: "retain", template: template.value,
      params: t && t.params && t.params.length ? { [template.value]: Number(param.value) } : {},
      tag_selectors: [doublestar(tagDec.value, tag.value, { untagged: untagged.checked })],
      scope_selectors: { repository: [doublestar(repoDec.value, repo.value)] },
    };
    const list = currentRules().slice();
    const wasEditing = editing >= 0 && editing < list.length;
    if (wasEditing) list[editing] = Object.assign({}, list[editing], rule, { disabled: Boolean(list[editing].disabled) });
    else list.push(rule);
    try {
      await save(list, currentCron());
      toast(wasEditing ? `Rule ${editing + 1} saved` : "Retention rule added");
      edit(-1);
      showRules();
      showRuns();
    } catch (e) { fail(e); }
  } }, "Retain", template, param, "in repositories", repoDec, repo, "tags", tagDec, tag,
  h("label", { class: "check" }, untagged, "untagged too"), submit, cancel) : null;

  const showRules = () => {
    const rows = currentRules().map((r, i) => {
      const sel = (r.tag_selectors || [])[0] || {};
      return h("tr", { "data-ret-rule": String(i + 1) },
        h("td", { class: "rule" }, ruleText(r, templates)),
        h("td", {}, selectorText(r.scope_selectors && r.scope_selectors.repository)),
        h("td", {}, selectorText(r.tag_selectors) + (untaggedOf(sel) ? " (untagged too)" : "")),
        h("td", { class: "state" }, r.disabled ? "disabled" : "enabled"),
        h("td", { class: "actions" },
          mayEdit ? h("button", { class: "copy ret-edit", onclick: () => edit(i) }, "Edit") : null,
          mayEdit ? h("button", { class: "ret-toggle", onclick: async () => {
            const list = currentRules().map((x, j) => (j === i ? Object.assign({}, x, { disabled: !x.disabled }) : x));
            try {
              await save(list, currentCron());
              toast(`Rule ${i + 1} ${r.disabled ? "enabled" : "disabled"}`);
              showRules();
            } catch (e) { fail(e); }
          } }, r.disabled ? "Enable" : "Disable") : null,
          mayEdit ? h("button", { class: "danger ret-delete", onclick: async () => {
            if (!confirm(`Delete retention rule ${i + 1}?`)) return;
            const list = currentRules().filter((_, j) => j !== i);
            try {
              await save(list, currentCron());
              toast(`Rule ${i + 1} deleted`);
              edit(-1);
              showRules();
            } catch (e) { fail(e); }
          } }, "Delete") : null));
    });
    rules.replaceChildren(table(["Rule", "Repositories", "Tags", "State", ""], rows,
      policy ? "No retention rules: a run keeps everything." : "No retention policy for this project yet."));
  };

  const showSchedule = () => {
    const next = policy && policy.trigger && policy.trigger.settings && policy.trigger.settings.next_scheduled_time;
    const now = currentCron()
      ? `Runs on cron "${currentCron()}"` + (next ? `, next at ${when(next)}.` : ".")
      : "Runs by hand only.";
    const cron = h("input", { id: "ret-cron", value: currentCron(), placeholder: "0 0 3 * * *", size: "18",
      title: "Harbor's cron: seconds minutes hours day-of-month month day-of-week; empty: by hand only" });
    const form = mayEdit ? h("form", { class: "inline", id: "ret-schedule-form", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await save(currentRules(), cron.value.trim());
        toast(cron.value.trim() ? `Schedule set: ${cron.value.trim()}` : "Schedule removed");
        showSchedule();
        showRuns();
      } catch (e) { fail(e); }
    } }, "Cron (sec min hour day month weekday)", cron, h("button", { type: "submit" }, "Save schedule")) : null;
    schedule.replaceChildren(h("p", { id: "ret-next" }, now), form);
  };

  let polling = 0;
  const showHistory = async (page, open) => {
    if (!id) { history.replaceChildren(muted(null, "The policy has not run yet.")); return; }
    try {
      const { data, total } = await api("GET", `/retentions/${enc(id)}/executions?page=${page}&page_size=${PAGE_SIZE}`);
      const execs = data || [];
      const body = [];
      for (const x of execs) {
        const detail = h("td", { colspan: "7" });
        const detailRow = h("tr", { class: "ret-result", "data-result": String(x.id), hidden: true }, detail);
        const show = async () => {
          detailRow.hidden = false;
          await executionResult(id, x, detail);
        };
        body.push(h("tr", { "data-execution": String(x.id) },
          h("td", {}, String(x.id)), h("td", { class: "status" }, x.status), h("td", {}, x.dry_run ? "dry run" : "run"),
          h("td", {}, x.trigger), h("td", {}, when(x.start_time)), h("td", {}, when(x.end_time)),
          h("td", {}, h("button", { class: "copy ret-details", onclick: () => (detailRow.hidden ? show() : (detailRow.hidden = true)) }, "Result"))),
        detailRow);
        if (open === x.id) await show();
      }
      history.replaceChildren(table(["Run", "Status", "Kind", "Trigger", "Started", "Ended", ""], body, "The policy has not run yet."),
        pager(page, total === null ? execs.length : total, (n) => showHistory(n)));
      return execs;
    } catch (e) { fail(e); history.replaceChildren(); return []; }
  };

  // After a run is asked for: the history follows it until it ends, then shows its result.
  const follow = async (eid) => {
    const mine = ++polling;
    for (let i = 0; i < 240 && mine === polling && history.isConnected; i++) {
      const execs = await showHistory(1);
      const x = execs.find((e) => e.id === eid);
      if (!x || FINISHED.includes(x.status)) {
        if (x) await showHistory(1, eid);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  const showRuns = () => {
    if (!mayRun || !id) { runs.replaceChildren(); return; }
    const trigger = (dryRun) => async () => {
      if (!dryRun && !confirm("Run the retention policy now? Artifacts no rule retains are deleted.")) return;
      try {
        const { resp } = await api("POST", `/retentions/${enc(id)}/executions`, { dry_run: dryRun });
        const eid = Number((resp.headers.get("Location") || "").split("/").pop());
        toast(dryRun ? "Dry run started" : "Retention run started");
        await follow(eid);
      } catch (e) { fail(e); }
    };
    runs.replaceChildren(h("div", { class: "inline" },
      h("button", { id: "ret-dry-run", class: "copy", onclick: trigger(true) }, "Dry run"),
      h("button", { id: "ret-run", class: "danger", onclick: trigger(false) }, "Run now")));
  };

  into.replaceChildren(rules, ruleForm, h("h3", {}, "Schedule"), schedule, h("h3", {}, "Runs"), runs, history);
  showRules();
  showSchedule();
  showRuns();
  await showHistory(1);
}

async function policiesPage(name) {
  let p;
  try { p = await loadProject(name); } catch (e) { fail(e); return; }
  const immutable = h("div", { id: "immutability" }, muted(null, "Loading…"));
  const retention = h("div", { id: "retention" }, muted(null, "Loading…"));
  main(...projectHeader(p, "policies"), h("h2", {}, "Tag immutability"), immutable, h("h2", {}, "Tag retention"), retention);
  let can;
  try { can = await projectPermissions(p); } catch (e) { fail(e); return; }
  await immutabilitySection(p, can, immutable);
  await retentionSection(p, can, retention);
}

// The registry view (#registry[/<model>]): a model's versions with their final metrics,
// lineage (init_from, sweep) and aliases, and a form that moves an alias to a version.

import { describeError, request } from "./api.js";
import { formatNumber } from "./chart.js";

// Bookkeeping series, not results: they would crowd the metric columns out.
const HIDDEN_METRICS = new Set(["epoch_seconds", "lr"]);
const METRIC_ORDER = ["train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"];

function element(name, { text = "", className = "", ...attributes } = {}, children = []) {
  const node = document.createElement(name);
  if (text) node.textContent = text;
  if (className) node.className = className;
  Object.assign(node, attributes);
  node.append(...children);
  return node;
}

const bytes = (n) => (n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);
const link = (href, text) => element("a", { href, text });
const chip = (alias) => element("span", { className: "alias", text: alias });

function metricNames(versions) {
  const names = new Set(versions.flatMap((v) => Object.keys(v.metrics)));
  const rank = (name) => (METRIC_ORDER.includes(name) ? METRIC_ORDER.indexOf(name) : METRIC_ORDER.length);
  return [...names].filter((n) => !HIDDEN_METRICS.has(n)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function lineage(version) {
  const parts = [];
  if (version.init_from) parts.push("from ", link(`#job/${version.init_from}`, `#${version.init_from}`));
  if (version.sweep_id) parts.push(parts.length ? " · " : "", link(`#sweep/${version.sweep_id}`, `sweep #${version.sweep_id}`));
  return parts;
}

function versionRow(version, names) {
  const tr = element("tr");
  tr.dataset.jobId = String(version.job_id);
  const cells = [
    [link(`#job/${version.job_id}`, `#${version.job_id}`)],
    [(version.finished_at || "").slice(0, 16).replace("T", " ")],
    [String(version.epochs)],
    ...names.map((name) => [version.metrics[name] == null ? "" : formatNumber(version.metrics[name])]),
    [version.best_value === null ? "" : `${formatNumber(version.best_value)} @${version.best_epoch}`],
    lineage(version),
    version.aliases.map(chip),
  ];
  const classes = ["", "", "num", ...names.map(() => "num"), "num", "lineage", "aliases"];
  cells.forEach((content, i) => tr.append(element("td", { className: classes[i] }, content)));
  return tr;
}

function versionsTable(versions) {
  const names = metricNames(versions);
  const headings = ["version", "finished", "epochs", ...names, "best", "lineage", "aliases"];
  const table = element("table", { className: "versions" });
  table.createTHead().insertRow().append(...headings.map((h) => element("th", { text: h })));
  table.createTBody().append(...versions.map((v) => versionRow(v, names)));
  return table;
}

// Alias name (existing ones offered, production first) -> version; PUT moves or creates it.
function aliasForm(versions, onMove) {
  const aliases = [...new Set(["production", ...versions.flatMap((v) => v.aliases)])];
  const list = element("datalist", { id: "registry-alias-names" }, aliases.map((a) => new Option(a)));
  const name = element("input", { name: "alias", value: "production", required: true });
  name.setAttribute("list", list.id);
  name.setAttribute("aria-label", "alias");
  const target = element("select", { name: "job_id" });
  target.setAttribute("aria-label", "version");
  for (const v of versions) {
    const named = v.aliases.length ? ` (${v.aliases.join(", ")})` : "";
    target.append(new Option(`#${v.job_id}${named}`, String(v.job_id)));
  }
  const message = element("span", { className: "alias-message summary" });
  message.setAttribute("aria-live", "polite");
  const form = element("form", { className: "alias-form" }, [
    element("label", { text: "Point alias" }), name, list, element("label", { text: "at" }), target,
    element("button", { type: "submit", text: "Move alias" }), message,
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onMove(name.value.trim(), Number(target.value), message);
  });
  return form;
}

export class RegistryView {
  constructor(root) {
    this.root = root;
    this.tabs = root.querySelector(".registry-models");
    this.body = root.querySelector(".registry-body");
    this.model = null;
  }

  hide() {
    this.root.hidden = true;
  }

  // model null: the first model that has versions.
  async show(model) {
    this.root.hidden = false;
    try {
      const counts = await this.countVersions();
      this.model = model || (counts.find(([, n]) => n > 0) || counts[0] || [null])[0];
      this.tabs.replaceChildren(
        ...counts.map(([name, n]) => {
          const tab = link(`#registry/${name}`, `${name} (${n})`);
          if (name === this.model) tab.className = "selected";
          return tab;
        }),
      );
      if (this.model) await this.showModel(this.model);
    } catch (error) {
      this.body.replaceChildren(describeError(error));
    }
  }

  // [model, number of versions] for every model: the tabs say where there is something to see.
  async countVersions() {
    const models = (await request("/models")).data.map((m) => m.name);
    const pages = await Promise.all(models.map((m) => request(`/models/${m}/versions`)));
    return models.map((m, i) => [m, pages[i].count]);
  }

  async showModel(model, notice = "") {
    const page = await request(`/models/${model}/versions`);
    if (this.model !== model) return;
    this.root.dataset.model = model;
    const summary = element("p", { className: "summary", text: `${page.count} versions · ${bytes(page.disk_bytes)} of checkpoints` });
    if (!page.count) {
      this.body.replaceChildren(summary, "No succeeded job of this model yet: train one.");
      return;
    }
    const form = aliasForm(page.data, (alias, jobId, message) => this.moveAlias(model, alias, jobId, message));
    form.querySelector(".alias-message").textContent = notice;
    this.body.replaceChildren(summary, form, versionsTable(page.data));
  }

  async moveAlias(model, alias, jobId, message) {
    message.textContent = "";
    message.classList.remove("error");
    try {
      const moved = await request(`/models/${model}/aliases/${encodeURIComponent(alias)}`, {
        method: "PUT",
        body: { job_id: jobId },
      });
      await this.showModel(model, `${moved.alias} → #${moved.job_id}`);
    } catch (error) {
      message.textContent = describeError(error);
      message.classList.add("error");
    }
  }
}

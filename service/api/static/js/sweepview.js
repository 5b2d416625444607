// The sweep views: #sweeps lists sweeps (and starts one), #sweep/<id> shows one leaderboard and
// its parallel-coordinates plot, polled while it runs.

import { describeError, request } from "./api.js";
import { formatNumber } from "./chart.js";
import { parallelPlot } from "./parallel.js";
import { startSweepForm } from "./sweepform.js";

const POLL_MS = 2000;
const COMPARE_TOP = 5;

function cell(content, className = "") {
  const td = document.createElement("td");
  td.append(content);
  if (className) td.className = className;
  return td;
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge status-${status}`;
  span.textContent = status;
  return span;
}

function table(headings, rows) {
  const element = document.createElement("table");
  const head = element.createTHead().insertRow();
  for (const heading of headings) head.append(Object.assign(document.createElement("th"), { textContent: heading }));
  const body = element.createTBody();
  body.append(...rows);
  return element;
}

function trialRow(trial) {
  const tr = document.createElement("tr");
  tr.dataset.jobId = String(trial.job_id);
  tr.dataset.status = trial.status;
  const params = Object.entries(trial.params).map(([k, v]) => `${k}=${v}`).join(" ");
  const best = trial.best_value === null ? "" : `${formatNumber(trial.best_value)} @${trial.best_epoch}`;
  tr.append(
    cell(String(trial.rank), "num"),
    cell(link(`#job/${trial.job_id}`, `#${trial.job_id}`)),
    cell(params),
    cell(badge(trial.status)),
    cell(`${trial.epoch} / ${trial.epochs}`, "num"),
    cell(best, "num best"),
  );
  if (trial.stop_reason) tr.title = trial.stop_reason;
  return tr;
}

function sweepRow(sweep) {
  const tr = document.createElement("tr");
  tr.dataset.sweepId = String(sweep.id);
  tr.append(
    cell(link(`#sweep/${sweep.id}`, `#${sweep.id}`)),
    cell(sweep.model),
    cell(`${sweep.metric} (${sweep.mode})`),
    cell(badge(sweep.status)),
    cell(`${sweep.finished} / ${sweep.trials}`, "num"),
  );
  return tr;
}

export class SweepView {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector("h2");
    this.body = root.querySelector(".sweep-body");
    this.create = root.querySelector(".sweep-create");
    this.isFormStarted = false;
    this.timer = null;
  }

  hide() {
    clearTimeout(this.timer);
    this.root.hidden = true;
  }

  // sweepId null: the list of sweeps.
  async show(sweepId) {
    clearTimeout(this.timer);
    this.root.hidden = false;
    this.sweepId = sweepId;
    this.create.hidden = sweepId !== null;
    // Not at page load: most visits never open the sweeps, and the form needs GET /models.
    if (sweepId === null && !this.isFormStarted) {
      this.isFormStarted = true;
      startSweepForm(this.create.querySelector("form"));
    }
    try {
      if (sweepId === null) await this.showList();
      else await this.showBoard(sweepId);
    } catch (error) {
      this.body.replaceChildren(describeError(error));
    }
  }

  async showList() {
    const page = await request("/sweeps?limit=50");
    this.title.textContent = "Sweeps";
    this.root.dataset.sweepId = "";
    const rows = page.data.map(sweepRow);
    this.body.replaceChildren(
      rows.length ? table(["sweep", "model", "metric", "status", "trials"], rows) : "No sweeps yet: start one above.",
    );
  }

  async showBoard(sweepId) {
    const sweep = await request(`/sweeps/${sweepId}`);
    if (this.sweepId !== sweepId) return;
    this.title.textContent = `Sweep #${sweep.id} · ${sweep.model} · ${sweep.metric} (${sweep.mode})`;
    this.root.dataset.sweepId = String(sweep.id);
    this.root.dataset.status = sweep.status;
    const summary = document.createElement("p");
    summary.className = "summary";
    const rungs = sweep.rungs.length ? ` · halving at epochs ${sweep.rungs.join(", ")}` : "";
    const winner = sweep.winner_job_id ? ` · winner #${sweep.winner_job_id}` : "";
    summary.append(badge(sweep.status), ` ${sweep.finished} of ${sweep.trials} trials ended${rungs}${winner}`);
    const top = sweep.leaderboard.filter((t) => t.best_value !== null).slice(0, COMPARE_TOP);
    const compare = link(`#compare/${top.map((t) => t.job_id).join(",")}?names=${sweep.metric}`, `compare the top ${top.length}`);
    compare.className = "compare-top";
    const board = table(["rank", "job", "params", "status", "epoch", `best ${sweep.metric}`], sweep.leaderboard.map(trialRow));
    board.className = "leaderboard";
    this.body.replaceChildren(summary, board, top.length ? compare : "", parallelPlot(sweep) || "");
    if (sweep.status !== "finished" && sweep.status !== "cancelled") this.timer = setTimeout(() => this.show(sweepId), POLL_MS);
  }
}

// One job: its state, live loss and accuracy curves from the SSE stream, its actions
// (cancel, clone, download, logs, delete), labels and params, and for logistic_hours the
// trained model's "hours vs probability of passing" curve.

import { authHeaders, describeError, request } from "./api.js";
import { LineChart, formatNumber } from "./chart.js";
import { summaryTable } from "./netsummary.js";
import { openJobStream } from "./sse.js";

const HOURS = Array.from({ length: 61 }, (_, i) => Math.round(i * 10) / 100);
const TERMINAL = ["succeeded", "failed", "cancelled"];
const LOG_POLL_MS = 1500;
// The stream says nothing while a job waits; its place and estimate move as others finish.
const QUEUE_POLL_MS = 3000;

// A sweep trial stopped by successive halving succeeded as a job, but was pruned.
export function shownStatus(job) {
  return (job.stop_reason || "").startsWith("pruned") ? "pruned" : job.status;
}

// 12 s, 4 min, 2 h 5 min: an estimate needs no more precision than that.
export function formatWait(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// "queue #3, starts in about 4 min" for a queued job (short: "queue #3 · ~4 min"); without
// an estimate just its place.
export function queueText(job, isShort = false) {
  if (job.status !== "queued" || !job.queue_position) return "";
  const estimate = job.queue_estimate_s;
  const place = `queue #${job.queue_position}`;
  if (estimate === null || estimate === undefined) return place;
  return isShort ? `${place} · ~${formatWait(estimate)}` : `${place}, starts in about ${formatWait(estimate)}`;
}

// "2 processes (gloo): rank 0 host-a cpu 1,216 samples/s; rank 1 ...": a distributed run's world.
export function worldText(distributed) {
  if (!distributed || !distributed.ranks) return "";
  const ranks = distributed.ranks.map((r) => {
    const speed = r.samples_per_s === null || r.samples_per_s === undefined ? "" : ` ${Math.round(r.samples_per_s).toLocaleString("en")} samples/s`;
    return `rank ${r.rank} ${r.host} ${r.device}${speed}`;
  });
  return `${distributed.world_size} processes (${distributed.backend}): ${ranks.join("; ")}`;
}

export class JobView {
  constructor(root) {
    this.root = root;
    this.stream = null;
    this.jobId = null;
    this.logTimer = null;
    this.queueTimer = null;
    this.message = root.querySelector(".action-message");
    for (const button of root.querySelectorAll(".job-actions button")) {
      button.addEventListener("click", () => this.act(button.dataset.action));
    }
    root.querySelector(".job-labels").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveLabels(event.target);
    });
  }

  close() {
    if (this.stream) this.stream.close();
    this.stream = null;
    this.stopLogs();
    clearTimeout(this.queueTimer);
  }

  // Re-reads a queued job's place and estimated start until it leaves the queue.
  pollQueue(jobId) {
    clearTimeout(this.queueTimer);
    if (this.jobId !== jobId || this.job.status !== "queued") return;
    this.queueTimer = setTimeout(async () => {
      try {
        const job = await request(`/jobs/${jobId}`);
        if (this.jobId !== jobId || this.job.status !== "queued") return;
        const { queue_position: position, queue_estimate_s: estimate, waiting_reason: reason } = job;
        this.renderState({ queue_position: position, queue_estimate_s: estimate, waiting_reason: reason });
      } catch {
        // The next poll tries again.
      }
      this.pollQueue(jobId);
    }, QUEUE_POLL_MS);
  }

  async act(action) {
    this.message.textContent = "";
    try {
      if (action === "cancel") {
        this.renderState(await request(`/jobs/${this.jobId}/cancel`, { method: "POST" }));
      } else if (action === "clone") {
        this.root.dispatchEvent(new CustomEvent("clone-job", { bubbles: true, detail: this.job }));
      } else if (action === "download") {
        await this.download();
      } else if (action === "logs") {
        this.toggleLogs();
      } else if (action === "delete" && confirm(`Delete job #${this.jobId} and its checkpoints?`)) {
        await request(`/jobs/${this.jobId}`, { method: "DELETE" });
        this.close();
        this.root.hidden = true;
        this.jobId = null;
        location.hash = "#";
      }
    } catch (error) {
      this.message.textContent = describeError(error);
    }
  }

  // Through fetch, not a link: with an API key the request needs its header.
  async download() {
    const response = await fetch(`/jobs/${this.jobId}/checkpoint`, { headers: authHeaders() });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${response.status}: ${body.detail || response.statusText}`);
    }
    const found = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = found ? found[1] : `job${this.jobId}.safetensors`;
    link.click();
    URL.revokeObjectURL(link.href);
  }

  toggleLogs() {
    const pre = this.root.querySelector(".job-logs");
    if (!pre.hidden) {
      this.stopLogs();
      pre.hidden = true;
      return;
    }
    pre.hidden = false;
    pre.textContent = "";
    let since = 0;
    const jobId = this.jobId;
    const poll = async () => {
      const page = await request(`/jobs/${jobId}/logs?since=${since}`);
      if (jobId !== this.jobId) return;
      since = page.next_since;
      const text = page.lines.map((l) => `${(l.time || "").slice(11, 19)} ${l.level || ""} ${l.message || ""}`);
      if (text.length) pre.textContent += `${text.join("\n")}\n`;
      if (!pre.textContent) pre.textContent = "no log lines yet";
      if (TERMINAL.includes(this.job.status)) this.stopLogs();
    };
    poll().catch((error) => (pre.textContent = describeError(error)));
    this.logTimer = setInterval(() => poll().catch(() => {}), LOG_POLL_MS);
  }

  stopLogs() {
    if (this.logTimer) clearInterval(this.logTimer);
    this.logTimer = null;
  }

  async saveLabels(form) {
    const value = (name) => form.elements[name].value.trim() || null;
    const tags = (value("tags") || "").split(/[\s,]+/).filter(Boolean);
    try {
      const job = await request(`/jobs/${this.jobId}`, {
        method: "PATCH",
        body: { name: value("name"), tags, note: value("note") },
      });
      this.renderState(job);
      this.renderLabels(job);
      this.message.textContent = "saved";
    } catch (error) {
      this.message.textContent = describeError(error);
    }
  }

  renderLabels(job) {
    const form = this.root.querySelector(".job-labels");
    form.elements.name.value = job.name || "";
    form.elements.tags.value = (job.tags || []).join(", ");
    form.elements.note.value = job.note || "";
    const title = `Job #${job.id} · ${job.model}${job.name ? ` · ${job.name}` : ""}`;
    this.title.textContent = title;
  }

  renderParams(params) {
    const rows = Object.entries(params || {}).map(([name, value]) => {
      const tr = document.createElement("tr");
      tr.dataset.param = name;
      for (const text of [name, JSON.stringify(value)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    this.root.querySelector(".job-params tbody").replaceChildren(...rows);
  }

  // A job of a model described as a layer list links to its summary: shapes and sizes.
  async renderNetwork(job) {
    const box = this.root.querySelector(".job-network");
    const path = job.links && job.links.summary;
    box.hidden = !path;
    const table = box.querySelector(".net-table");
    table.replaceChildren();
    if (!path) return;
    const link = box.querySelector(".network-link");
    link.href = path;
    link.textContent = `GET ${path}`;
    try {
      const summary = await request(path);
      if (this.jobId === job.id) table.replaceChildren(summaryTable(summary.layers, summary));
    } catch (error) {
      table.textContent = describeError(error);
    }
  }

  async show(jobId) {
    this.close();
    this.jobId = jobId;
    this.root.hidden = false;
    this.root.dataset.jobId = String(jobId);
    const $ = (selector) => this.root.querySelector(selector);
    this.title = $(".job-title");
    this.state = $(".job-state");
    this.progress = $("progress");
    this.latest = $(".latest-metrics");
    this.promote = $(".job-promote");
    this.promote.hidden = true;
    this.promoteResult = $(".promote-result");
    this.promoteResult.textContent = "";
    $("#promote-job").onclick = () => this.promoteToProduction(jobId);
    const charts = $(".charts");
    charts.replaceChildren();
    this.loss = new LineChart(charts, { title: "Loss", name: "loss", autoLog: true });
    this.accuracy = null;
    this.charts = charts;
    this.hours = $(".hours-chart");
    this.hours.replaceChildren();
    this.errorBox = $(".job-error");
    this.errorBox.hidden = true;
    this.message.textContent = "";
    $(".job-logs").hidden = true;
    try {
      this.job = await request(`/jobs/${jobId}`);
    } catch (error) {
      this.state.textContent = describeError(error);
      return;
    }
    if (this.jobId !== jobId) return;
    this.renderLabels(this.job);
    this.renderParams(this.job.params);
    this.renderNetwork(this.job);
    this.renderState(this.job);
    this.pollQueue(jobId);
    this.stream = openJobStream(jobId, {
      epoch: (event) => this.onEpoch(event),
      status: (event) => this.onStatus(event),
      end: (event) => this.onEnd(event),
      error: (message) => {
        this.state.textContent = message;
      },
    });
  }

  onEpoch({ epoch, epochs, metrics, status }) {
    for (const [name, value] of Object.entries(metrics)) {
      if (name.endsWith("_loss")) this.loss.add(name, epoch, value);
      if (name.endsWith("_accuracy")) this.accuracyChart().add(name, epoch, value);
    }
    this.renderState({ ...this.job, status, epoch, epochs });
    this.latest.replaceChildren(
      ...Object.entries(metrics).map(([name, value]) => {
        const item = document.createElement("span");
        item.textContent = `${name} ${value === null ? "NaN" : formatNumber(value)}`;
        return item;
      }),
    );
  }

  accuracyChart() {
    if (!this.accuracy) {
      this.accuracy = new LineChart(this.charts, {
        title: "Accuracy",
        name: "accuracy",
        yRange: [0, 1],
      });
    }
    return this.accuracy;
  }

  renderState(job) {
    this.job = { ...this.job, ...job };
    const { status, epoch, epochs, error, device, stop_reason: stopReason } = this.job;
    const waiting = status === "queued" ? this.job.waiting_reason : null;
    this.root.dataset.status = status;
    this.state.replaceChildren();
    const badge = document.createElement("span");
    const shown = shownStatus(this.job);
    badge.className = `badge status-${shown}`;
    badge.textContent = shown;
    const where = device ? ` on ${device}` : "";
    this.state.append(badge, ` epoch ${epoch} / ${epochs}${where}`);
    const queued = queueText(this.job);
    if (queued) this.state.append(" · ", Object.assign(document.createElement("span"), { className: "queue", textContent: queued }));
    if (waiting) this.state.append(` · waiting: ${waiting}`);
    const world = worldText(this.job.distributed);
    if (world) this.state.append(" · ", Object.assign(document.createElement("span"), { className: "world", textContent: world }));
    if (stopReason) this.state.append(` · ${stopReason}`);
    const tags = document.createElement("span");
    tags.className = "job-tags";
    for (const tag of this.job.tags || []) {
      const item = document.createElement("span");
      item.className = "tag";
      item.textContent = tag;
      tags.append(item);
    }
    this.state.append(tags);
    this.progress.max = epochs || 1;
    this.progress.value = epoch;
    this.renderError(status, error);
    this.renderActions(status);
    this.promote.hidden = status !== "succeeded";
  }

  // A failed job's error stands where its chart would be; an empty chart says so too.
  renderError(status, error) {
    const isFailed = status === "failed" && Boolean(error);
    this.errorBox.hidden = !isFailed;
    this.errorBox.textContent = isFailed ? `failed: ${error}` : "";
    if (isFailed) this.loss.setEmptyText("no epochs recorded: the job failed");
  }

  renderActions(status) {
    const isOver = TERMINAL.includes(status);
    const shown = { cancel: !isOver, delete: isOver, download: status === "succeeded" };
    for (const button of this.root.querySelectorAll(".job-actions button")) {
      button.hidden = shown[button.dataset.action] === false;
    }
  }

  // /predict/<model> answers from the production alias; a new version serves once moved.
  async promoteToProduction(jobId) {
    try {
      const alias = await request(`/models/${this.job.model}/aliases/production`, {
        method: "PUT",
        body: { job_id: jobId },
      });
      this.promoteResult.textContent = `production is now job #${alias.job_id}`;
    } catch (error) {
      this.promoteResult.textContent = describeError(error);
    }
  }

  // A state change also brings a device and worker; the job record has them.
  async onStatus(event) {
    this.renderState(event);
    try {
      const job = await request(`/jobs/${this.jobId}`);
      if (job.id === this.jobId) {
        const { device, error, stop_reason: stopReason, waiting_reason: waitingReason } = job;
        this.renderState({ device, error, stop_reason: stopReason, waiting_reason: waitingReason });
      }
    } catch {
      // The stream goes on; the next state change tries again.
    }
  }

  async onEnd(event) {
    this.renderState(event);
    this.stream = null;
    if (this.job.model === "logistic_hours" && event.status === "succeeded") {
      await this.drawHoursCurve(this.jobId);
    }
  }

  async drawHoursCurve(jobId) {
    const chart = new LineChart(this.hours, {
      title: "Hours of study vs probability of passing",
      name: "hours",
      xLabel: "hours",
      yRange: [0, 1],
    });
    try {
      const answer = await request(`/predict/logistic_hours?job_id=${jobId}`, {
        method: "POST",
        body: { hours: HOURS },
      });
      chart.set("P(pass)", HOURS.map((h, i) => [h, answer.probabilities[i]]));
    } catch (error) {
      this.hours.append(describeError(error));
    }
  }
}

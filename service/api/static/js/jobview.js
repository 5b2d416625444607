// One job: its state, live loss and accuracy curves from the SSE stream, and for
// logistic_hours the trained model's "hours vs probability of passing" curve.

import { describeError, request } from "./api.js";
import { LineChart, formatNumber } from "./chart.js";
import { openJobStream } from "./sse.js";

const HOURS = Array.from({ length: 61 }, (_, i) => Math.round(i * 10) / 100);

export class JobView {
  constructor(root) {
    this.root = root;
    this.stream = null;
    this.jobId = null;
  }

  close() {
    if (this.stream) this.stream.close();
    this.stream = null;
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
    try {
      this.job = await request(`/jobs/${jobId}`);
    } catch (error) {
      this.state.textContent = describeError(error);
      return;
    }
    if (this.jobId !== jobId) return;
    this.title.textContent = `Job #${jobId} · ${this.job.model}`;
    this.renderState(this.job);
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
    this.root.dataset.status = status;
    this.state.replaceChildren();
    const badge = document.createElement("span");
    badge.className = `badge status-${status}`;
    badge.textContent = status;
    const where = device ? ` on ${device}` : "";
    this.state.append(badge, ` epoch ${epoch} / ${epochs}${where}`);
    if (error) this.state.append(` · ${error}`);
    if (stopReason) this.state.append(` · ${stopReason}`);
    this.progress.max = epochs || 1;
    this.progress.value = epoch;
    this.promote.hidden = status !== "succeeded";
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
        this.renderState({ device: job.device, error: job.error, stop_reason: job.stop_reason });
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

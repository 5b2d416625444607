// The comparison view (#compare/<ids>[?names=a,b]): chosen jobs' curves overlaid, one chart a metric.

import { describeError, request } from "./api.js";
import { LineChart } from "./chart.js";

const MAX_POINTS = 1000;
const DEFAULT_NAMES = "train_loss,val_loss,val_accuracy";

// "#compare/3,5?names=val_loss" -> {ids: "3,5", names: "val_loss"}; null for other hashes.
export function parseCompareHash(hash) {
  const match = hash.match(/^#compare(?:\/([\d,]*))?(?:\?names=([\w,]*))?$/);
  return match ? { ids: match[1] || "", names: match[2] || DEFAULT_NAMES } : null;
}

export class CompareView {
  constructor(root) {
    this.root = root;
    this.form = root.querySelector("form");
    this.ids = this.form.querySelector("[name=ids]");
    this.names = this.form.querySelector("[name=names]");
    this.charts = root.querySelector(".charts");
    this.message = root.querySelector(".message");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const ids = this.ids.value.replace(/\s+/g, "");
      location.hash = `#compare/${ids}?names=${this.names.value.replace(/\s+/g, "")}`;
    });
  }

  async show({ ids, names }) {
    this.root.hidden = false;
    this.ids.value = ids;
    this.names.value = names;
    this.charts.replaceChildren();
    this.message.textContent = "";
    if (!ids) {
      this.message.textContent = "Give job ids, e.g. 3,5,8, or pick trials from a sweep.";
      return;
    }
    const query = new URLSearchParams({ ids, names, max_points: String(MAX_POINTS) });
    let body;
    try {
      body = await request(`/jobs/compare?${query}`);
    } catch (error) {
      this.message.textContent = describeError(error);
      return;
    }
    this.render(body);
  }

  render({ names, data }) {
    this.root.dataset.jobs = data.map((job) => job.job_id).join(",");
    for (const name of names) {
      const drawn = data.filter((job) => job.series[name]);
      if (!drawn.length) continue;
      const chart = new LineChart(this.charts, {
        title: name,
        name: `compare-${name}`,
        autoLog: name.endsWith("loss"),
        yRange: name.endsWith("accuracy") ? [0, 1] : null,
      });
      for (const job of drawn) chart.set(`#${job.job_id} ${job.model}`, job.series[name]);
    }
    if (!this.charts.children.length) this.message.textContent = "No such metric in these jobs.";
  }

  hide() {
    this.root.hidden = true;
  }
}

// The job list: newest first, polled so each row's status and progress stay current.

import { describeError, request } from "./api.js";
import { shownStatus } from "./jobview.js";

const POLL_MS = 1500;

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function row(job, selectedId) {
  const tr = document.createElement("tr");
  tr.dataset.jobId = String(job.id);
  tr.dataset.status = job.status;
  if (job.id === selectedId) tr.className = "selected";
  const link = document.createElement("a");
  link.href = `#job/${job.id}`;
  link.textContent = `#${job.id}`;
  const id = document.createElement("td");
  id.append(link);
  const badge = document.createElement("span");
  const shown = shownStatus(job);
  badge.className = `badge status-${shown}`;
  badge.textContent = shown;
  const status = document.createElement("td");
  status.append(badge);
  const progress = job.status === "queued" && job.queue_position
    ? `queue #${job.queue_position}`
    : `${job.epoch} / ${job.epochs}`;
  const duration = job.duration_s === null ? "" : `${job.duration_s.toFixed(1)} s`;
  const model = cell(job.model);
  if (job.name) model.append(` · ${job.name}`);
  if (job.waiting_reason) status.title = job.waiting_reason;
  tr.append(id, model, status, cell(progress, "num"), cell(duration, "num"));
  tr.addEventListener("click", () => {
    location.hash = `#job/${job.id}`;
  });
  return tr;
}

// Polls GET /jobs into tbody; selectedId() marks the job on view.
export function startJobList(tbody, message, selectedId) {
  async function refresh() {
    try {
      const page = await request("/jobs?limit=25");
      tbody.replaceChildren(...page.data.map((job) => row(job, selectedId())));
      message.textContent = page.count ? "" : "No jobs yet: submit one.";
    } catch (error) {
      message.textContent = describeError(error);
    }
  }
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return { refresh, stop: () => clearInterval(timer) };
}

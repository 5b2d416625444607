// Wires the page: API key, the job form, the job list, the job view (#job/<id>), the digit pad.

import { startAnalysisViews } from "./analysis.js";
import { ApiError, apiKey, describeError, request, setApiKey } from "./api.js";
import { startDatasetPanel } from "./datasetpanel.js";
import { startDigitPad } from "./digit.js";
import { startJobList } from "./joblist.js";
import { JobView } from "./jobview.js";
import { attachLayerEditor, hasLayerList } from "./layereditor.js";
import { renderForm } from "./schemaform.js";

const $ = (selector) => document.querySelector(selector);
const DEFAULT_MODEL = "logistic_hours";

function selectedJobId() {
  const match = location.hash.match(/^#job\/(\d+)$/);
  return match ? Number(match[1]) : null;
}

function setUpApiKey() {
  const input = $("#api-key");
  input.value = apiKey();
  $("#api-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    location.reload();
  });
}

async function setUpJobForm(onSubmitted) {
  const select = $("#model-select");
  const summary = $("#model-summary");
  const formError = $("#form-error");
  let models;
  try {
    models = (await request("/models")).data;
  } catch (error) {
    formError.textContent = describeError(error);
    return;
  }
  const byName = new Map(models.map((m) => [m.name, m]));
  for (const model of models) select.append(new Option(model.name, model.name));
  select.value = byName.has(DEFAULT_MODEL) ? DEFAULT_MODEL : models[0].name;
  let form;
  let editor = null;
  const showModel = () => {
    const model = byName.get(select.value);
    summary.textContent = model.summary;
    formError.textContent = "";
    const designed = hasLayerList(model.options_schema);
    form = renderForm($("#job-fields"), model.options_schema, { essentials: designed ? ["data", "layers"] : [] });
    editor = designed ? attachLayerEditor($("#job-fields"), model, form) : null;
  };
  select.addEventListener("change", showModel);
  showModel();
  // "Clone and edit" on a job: its model and params in the form, ready to change and submit.
  document.addEventListener("clone-job", (event) => {
    const job = event.detail;
    if (!byName.has(job.model)) return;
    select.value = job.model;
    showModel();
    form.fill(job.params);
    if (editor) editor.refresh();
    formError.textContent = "";
    summary.textContent = `Cloned from job #${job.id}: edit and submit.`;
    $("#submit-panel").scrollIntoView({ block: "start" });
  });

  $("#job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    form.clear();
    let params;
    try {
      params = form.read();
      if (editor) params = editor.complete(params);
    } catch {
      return;
    }
    try {
      const job = await request("/jobs", { method: "POST", body: { model: select.value, params } });
      onSubmitted(job);
    } catch (error) {
      const unplaced = error instanceof ApiError && error.status === 422 ? form.showErrors(error.detail) : null;
      if (editor && unplaced !== null) editor.showErrors(error.detail);
      if (unplaced === null) formError.textContent = describeError(error);
      else if (unplaced.length) formError.textContent = describeError(new ApiError(422, unplaced));
    }
  });
}

function main() {
  setUpApiKey();
  const view = new JobView($("#job-view"));
  const list = startJobList($("#job-list tbody"), $("#job-list-message"), selectedJobId, $("#job-filters"));
  const route = () => {
    const jobId = selectedJobId();
    if (jobId !== null && jobId !== view.jobId) view.show(jobId);
    list.refresh();
  };
  window.addEventListener("hashchange", route);
  route();
  setUpJobForm((job) => {
    // Shown now rather than on the hashchange, so it can be scrolled into view at once.
    view.show(job.id);
    location.hash = `#job/${job.id}`;
    $("#job-view").scrollIntoView({ block: "start" });
  });
  startDigitPad($("#digit-canvas"), $("#digit-predict"), $("#digit-clear"), $("#digit-result"));
  startAnalysisViews($("#compare-view"), $("#sweep-view"), $("#registry-view"));
  startDatasetPanel($("#datasets-panel"));
}

main();

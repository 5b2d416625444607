// Draw a digit with the mouse (or a finger) and ask POST /predict/mnist what it is.

import { describeError, request } from "./api.js";

const STROKE_PX = 20;

function clearCanvas(context, canvas) {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
}

function renderAnswer(result, answer) {
  result.replaceChildren();
  const prediction = answer.predictions[0];
  const digit = document.createElement("div");
  digit.className = "digit-answer";
  digit.dataset.digit = String(prediction.digit);
  digit.textContent = String(prediction.digit);
  const list = document.createElement("ol");
  list.className = "top3";
  for (const { digit: d, probability } of prediction.top3) {
    const item = document.createElement("li");
    item.dataset.digit = String(d);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(probability * 8).toFixed(2)}rem`;
    item.append(`${d}`, bar, `${(probability * 100).toFixed(1)} %`);
    list.append(item);
  }
  const source = document.createElement("small");
  source.textContent = `answered by job #${answer.job_id} (${answer.model})`;
  result.append(digit, list, source);
}

export function startDigitPad(canvas, predictButton, clearButton, result) {
  const context = canvas.getContext("2d");
  clearCanvas(context, canvas);
  let isDrawing = false;
  let hasInk = false;
  let asked = 0;

  function position(event) {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  }

  canvas.addEventListener("pointerdown", (event) => {
    isDrawing = true;
    hasInk = true;
    canvas.setPointerCapture(event.pointerId);
    context.strokeStyle = "#000";
    context.lineWidth = STROKE_PX;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(...position(event));
    // A dot where the pointer went down, so a click leaves ink too.
    context.lineTo(...position(event));
    context.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!isDrawing) return;
    context.lineTo(...position(event));
    context.stroke();
  });
  for (const name of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(name, () => {
      isDrawing = false;
    });
  }

  clearButton.addEventListener("click", () => {
    clearCanvas(context, canvas);
    hasInk = false;
    result.replaceChildren();
  });

  predictButton.addEventListener("click", () => {
    if (!hasInk) {
      result.textContent = "Draw a digit first.";
      return;
    }
    const ticket = ++asked;
    result.textContent = "Asking the model…";
    canvas.toBlob(async (blob) => {
      const form = new FormData();
      form.append("file", blob, "digit.png");
      try {
        const answer = await request("/predict/mnist", { method: "POST", body: form });
        // Only the newest question's answer is shown.
        if (ticket === asked) renderAnswer(result, answer);
      } catch (error) {
        if (ticket !== asked) return;
        result.replaceChildren();
        const message = document.createElement("p");
        message.className = "error";
        // 409: no trained MNIST model yet; the server's message says how to train one.
        message.textContent = error.status === 409 ? error.message : describeError(error);
        result.append(message);
      }
    }, "image/png");
  });
}

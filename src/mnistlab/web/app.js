// The draw-a-digit page: strokes on a canvas (Pointer Events), uploads, and the answer of
// POST /api/predict. No libraries: it must work offline, served by `mnistlab serve` alone.
"use strict";

const STROKE_WIDTH = 20; // In canvas pixels (280x280): about an MNIST pen stroke once shrunk to 20 px.
const WHILE_DRAWING_MS = 250; // At most one request per this interval while a stroke goes on.

const canvas = document.getElementById("canvas");
const context = canvas.getContext("2d");
const undoButton = document.getElementById("undo");
const clearButton = document.getElementById("clear");
const fileInput = document.getElementById("file");
const dropZone = document.getElementById("drop-zone");
const upload = document.getElementById("upload");
const uploadImage = document.getElementById("upload-image");
const uploadName = document.getElementById("upload-name");
const digitOutput = document.getElementById("digit");
const confidenceText = document.getElementById("confidence");
const messageText = document.getElementById("message");
const barList = document.getElementById("bars");
const preview = document.getElementById("preview");
const previewEmpty = document.getElementById("preview-empty");
const modelInfo = document.getElementById("model-info");
const resultPanel = document.getElementById("result-panel");

const strokes = []; // Each stroke: {width, points: [[x, y], ...]} in canvas pixels.
let activeStroke = null;
let activePointer = null;
let uploadUrl = null;
let requestNumber = 0; // Answers to older requests than the latest one shown are dropped.
let shownNumber = 0;
let drawingTimer = null;
let inFlight = false;
let sendAgain = false;

// --- Probability bars -----------------------------------------------------------------------

const bars = [];
for (let digit = 0; digit < 10; digit++) {
  const row = document.createElement("li");
  row.className = "bar";
  row.innerHTML =
    `<span class="bar-label">${digit}</span>` +
    `<span class="bar-track"><span class="bar-fill"></span></span>` +
    `<span class="bar-value"></span>`;
  barList.appendChild(row);
  bars.push({ row, fill: row.querySelector(".bar-fill"), value: row.querySelector(".bar-value") });
}

// --- Drawing --------------------------------------------------------------------------------

function paintBackground() {
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
}

function paintStroke(stroke) {
  context.strokeStyle = "#fff";
  context.fillStyle = "#fff";
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = stroke.width;
  const [first, ...rest] = stroke.points;
  if (rest.length === 0) { // A tap: a dot.
    context.beginPath();
    context.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    context.fill();
    return;
  }
  context.beginPath();
  context.moveTo(first[0], first[1]);
  for (const [x, y] of rest) context.lineTo(x, y);
  context.stroke();
}

function repaint() {
  paintBackground();
  strokes.forEach(paintStroke);
  undoButton.disabled = strokes.length === 0;
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) / box.width) * canvas.width,
    ((event.clientY - box.top) / box.height) * canvas.height,
  ];
}

canvas.addEventListener("pointerdown", (event) => {
  if (activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  hideUpload();
  activePointer = event.pointerId;
  canvas.setPointerCapture(event.pointerId);
  // A pen draws thinner with a lighter touch; mouse and finger report no useful pressure.
  const pressure = event.pointerType === "pen" && event.pressure > 0 ? 0.6 + 0.8 * event.pressure : 1;
  activeStroke = { width: STROKE_WIDTH * pressure, points: [canvasPoint(event)] };
  strokes.push(activeStroke);
  repaint();
});

canvas.addEventListener("pointermove", (event) => {
  if (event.pointerId !== activePointer) return;
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const move of moves.length ? moves : [event]) activeStroke.points.push(canvasPoint(move));
  repaint();
  // Throttled while drawing: the answer follows the stroke without a request per mouse move.
  if (drawingTimer === null) {
    drawingTimer = setTimeout(() => { drawingTimer = null; predictCanvas(); }, WHILE_DRAWING_MS);
  }
});

function endStroke(event) {
  if (event.pointerId !== activePointer) return;
  activePointer = null;
  activeStroke = null;
  clearTimeout(drawingTimer);
  drawingTimer = null;
  predictCanvas();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function undo() {
  if (activePointer !== null) return;
  strokes.pop();
  repaint();
  if (strokes.length) predictCanvas(); else showEmpty();
}

function clearAll() {
  strokes.length = 0;
  hideUpload();
  repaint();
  showEmpty();
}

undoButton.addEventListener("click", undo);
clearButton.addEventListener("click", clearAll);
document.addEventListener("keydown", (event) => {
  const typing = event.target instanceof HTMLInputElement && event.target.type !== "file";
  if (typing) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearAll();
  }
});

// --- Uploads: file picker, drag and drop, paste --------------------------------------------

function showUpload(file) {
  if (uploadUrl) URL.revokeObjectURL(uploadUrl);
  uploadUrl = URL.createObjectURL(file);
  uploadImage.hidden = false;
  uploadImage.src = uploadUrl;
  uploadName.textContent = file.name || "pasted image";
  upload.hidden = false;
}

function hideUpload() {
  if (upload.hidden) return;
  upload.hidden = true;
  uploadImage.removeAttribute("src");
  if (uploadUrl) URL.revokeObjectURL(uploadUrl);
  uploadUrl = null;
}

function predictFile(file) {
  if (!file) return;
  strokes.length = 0;
  repaint();
  showUpload(file);
  send(file, file.type || "application/octet-stream");
}

uploadImage.addEventListener("error", () => {
  if (!uploadImage.getAttribute("src")) return;
  uploadImage.hidden = true; // Not an image the browser can show either: name it instead.
  uploadName.textContent += " (cannot be shown)";
});

fileInput.addEventListener("change", () => {
  predictFile(fileInput.files[0]);
  fileInput.value = ""; // Choosing the same file again still fires "change".
});

dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  predictFile(event.dataTransfer.files[0]);
});
// A file dropped beside the square must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

document.addEventListener("paste", (event) => {
  const file = [...event.clipboardData.files].find((item) => item.type.startsWith("image/"));
  if (file) {
    event.preventDefault();
    predictFile(file);
  }
});

// --- Asking the server ----------------------------------------------------------------------

function setBusy(busy) {
  // aria-busy tells assistive technology (and the browser test) that an answer is coming.
  resultPanel.setAttribute("aria-busy", String(busy));
}

function predictCanvas() {
  if (strokes.length === 0) return;
  setBusy(true);
  if (inFlight) { sendAgain = true; return; } // One request at a time; the latest drawing wins.
  inFlight = true;
  canvas.toBlob((blob) => send(blob, "image/png"), "image/png");
}

async function send(body, contentType) {
  const number = ++requestNumber;
  inFlight = true;
  setBusy(true);
  try {
    const response = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": contentType },
      body,
    });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (number < shownNumber) return;
    shownNumber = number;
    if (response.ok) showAnswer(answer); else showError(answer.error || `HTTP ${response.status}`);
  } catch (error) {
    if (number >= shownNumber) showError("the server cannot be reached; is `mnistlab serve` still running?");
  } finally {
    inFlight = false;
    if (sendAgain) { sendAgain = false; predictCanvas(); } else setBusy(false);
  }
}

// --- Showing the answer ---------------------------------------------------------------------

function percent(probability) {
  return `${(100 * probability).toFixed(probability >= 0.995 || probability < 0.005 ? 0 : 1)}%`;
}

function showBars(probabilities) {
  const best = probabilities.length ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  bars.forEach((bar, digit) => {
    const probability = probabilities.length ? probabilities[digit] : 0;
    bar.fill.style.width = `${100 * probability}%`;
    bar.value.textContent = probabilities.length ? percent(probability) : "";
    bar.row.classList.toggle("top", digit === best);
    bar.row.setAttribute("aria-label", `${digit}: ${probabilities.length ? percent(probability) : "no answer"}`);
  });
}

function showPreview(base64) {
  if (base64) preview.src = `data:image/png;base64,${base64}`;
  else preview.removeAttribute("src");
  preview.hidden = !base64;
  previewEmpty.hidden = Boolean(base64);
}

function setMessage(text, kind) {
  messageText.textContent = text;
  messageText.className = `message ${kind || ""}`.trim();
}

function showAnswer(answer) {
  showBars(answer.probabilities);
  showPreview(answer.preview_png_base64);
  const refused = answer.rejected !== null;
  digitOutput.classList.toggle("rejected", refused || answer.uncertain);
  if (!refused && !answer.uncertain) {
    digitOutput.textContent = String(answer.label);
    confidenceText.textContent = `${percent(answer.confidence)} sure`;
    setMessage("");
  } else if (!refused) {
    // The best guess, always: low confidence is a flag, not a refusal.
    digitOutput.textContent = `${answer.label}?`;
    confidenceText.textContent = `Not sure: ${answer.label}? (${percent(answer.confidence)})`;
    setMessage("The model is unsure of this one. Try drawing it larger or clearer.", "warn");
  } else if (answer.confidence === null) {
    digitOutput.textContent = "?";
    confidenceText.textContent = "No digit found";
    setMessage(answer.rejected, "warn");
  } else {
    digitOutput.textContent = "–";
    confidenceText.textContent = "Not a digit";
    setMessage("This does not look like one digit 0-9: draw a single digit, large, in the square.", "warn");
  }
}

function showError(message) {
  digitOutput.textContent = "";
  digitOutput.classList.remove("rejected");
  confidenceText.textContent = "Cannot read this";
  setMessage(message, "error");
  showBars([]);
  showPreview(null);
}

function showEmpty() {
  shownNumber = ++requestNumber; // Answers still on their way are for a drawing that is gone.
  sendAgain = false;
  if (!inFlight) setBusy(false);
  digitOutput.textContent = "";
  digitOutput.classList.remove("rejected");
  confidenceText.textContent = "";
  setMessage("Draw a digit to see what the model reads.");
  showBars([]);
  showPreview(null);
}

async function showModel() {
  try {
    const response = await fetch("/api/model");
    if (!response.ok) return;
    const model = await response.json();
    const accuracy = model.test_accuracy === null ? "" : ` · ${(100 * model.test_accuracy).toFixed(2)}% on the MNIST test set`;
    modelInfo.textContent = `Model: ${model.name}${accuracy} · ${model.engine} · mnistlab ${model.mnistlab_version}`;
  } catch (error) {
    // The footer is a nicety; the page works without it.
  }
}

repaint();
showEmpty();
showModel();

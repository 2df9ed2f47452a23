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
    if (response.ok) showAnswer(answer); else showError(humanError(response.status, answer.error));
  } catch (error) {
    if (number >= shownNumber) showError(humanError(0, String(error)));
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
    bar.fill.style.setProperty("--p", String(probability)); // A width, or a height on phones.
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
    const several = answer.rejected.startsWith("not a digit: several digits");
    confidenceText.textContent = several ? "Several digits?" : "Not a digit";
    setMessage(several
      ? "This looks like a number: switch to \u201cA number\u201d above to read it."
      : "This does not look like one digit 0-9: draw a single digit, large, in the square.", "warn");
  }
}

let maxUploadMb = null; // From /api/model, for the "too large" message.

// What a person is told about a refused upload (in either mode: `subject` is what they read);
// the API's precise words go to the console.
function humanError(status, apiError, subject = "the digit") {
  if (apiError) console.info(`mnistlab API (HTTP ${status}): ${apiError}`);
  const error = apiError || "";
  if (status === 0) return "The server can't be reached. Is mnistlab serve still running?";
  if (status === 413) {
    const limit = maxUploadMb === null ? "" : ` (the limit is ${maxUploadMb} MB)`;
    return `That file is too large to upload${limit}: try a smaller photo or a screenshot.`;
  }
  if (status === 422 && error.includes("limit of")) {
    return `That image is too big to read: try a smaller photo, or crop it around ${subject}.`;
  }
  if (status === 415 || status === 422) {
    return "That file isn't an image I can read: try a PNG or JPEG photo.";
  }
  if (status === 503) return "The server is busy right now: try again in a moment.";
  if (status === 408) return "The upload took too long: check the connection and try again.";
  return `Something went wrong (HTTP ${status}): try again, or draw ${subject} instead.`;
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
    maxUploadMb = model.max_upload_mb;
    const accuracy = model.test_accuracy === null ? "" : ` · ${(100 * model.test_accuracy).toFixed(2)}% on the MNIST test set`;
    modelInfo.textContent = `Model: ${model.name}${accuracy} · ${model.engine} · mnistlab ${model.mnistlab_version}`;
  } catch (error) {
    // The footer is a nicety; the page works without it.
  }
}

// On a touch screen there is no keyboard to name: say what a finger can do.
if (matchMedia("(hover: none) and (pointer: coarse)").matches) {
  document.getElementById("shortcuts").textContent =
    "Draw with a finger or a pen. Undo takes back the last stroke; Upload image reads a photo.";
}

repaint();
showEmpty();
showModel();

// --- A number: a wide canvas read by POST /api/read -----------------------------------------
// Its own strokes, requests and answer; the one-digit mode above is untouched by it.

const NUMBER_STROKE_WIDTH = 16; // On the 840x280 canvas: digits about 200 px tall are drawn like the square's.
const modeDigit = document.getElementById("mode-digit");
const modeNumber = document.getElementById("mode-number");
const digitMode = document.getElementById("digit-mode");
const numberMode = document.getElementById("number-mode");
const numberCanvas = document.getElementById("number-canvas");
const numberContext = numberCanvas.getContext("2d");
const numberBoxes = document.getElementById("number-boxes");
const boxesContext = numberBoxes.getContext("2d");
const numberUndo = document.getElementById("number-undo");
const numberClear = document.getElementById("number-clear");
const numberFile = document.getElementById("number-file");
const numberResult = document.getElementById("number-result");
const numberText = document.getElementById("number-text");
const numberMessage = document.getElementById("number-message");
const numberDigits = document.getElementById("number-digits");

const numberStrokes = [];
const number = { stroke: null, pointer: null, timer: null, inFlight: false, again: false,
  sent: 0, shown: 0, image: null, place: null };

function showMode(wantNumber) {
  modeDigit.setAttribute("aria-selected", String(!wantNumber));
  modeNumber.setAttribute("aria-selected", String(wantNumber));
  digitMode.hidden = wantNumber;
  numberMode.hidden = !wantNumber;
  document.querySelector("h1").textContent = wantNumber ? "Write a number" : "Draw a digit";
  lead.textContent = wantNumber ? NUMBER_LEAD : digitLead;
}
const lead = document.querySelector(".lead");
const digitLead = lead.textContent;
const NUMBER_LEAD = "Write a number, 1 to 20 digits on one line, in the black strip, or upload a photo"
  + " of one. Each digit is cut out and normalised the way MNIST was before the model reads it.";
modeDigit.addEventListener("click", () => showMode(false));
modeNumber.addEventListener("click", () => showMode(true));

function numberRepaint() {
  numberContext.fillStyle = "#000";
  numberContext.fillRect(0, 0, numberCanvas.width, numberCanvas.height);
  if (number.image) {
    const { x, y, scale } = number.place;
    numberContext.drawImage(number.image, x, y, number.image.width * scale, number.image.height * scale);
  }
  numberContext.strokeStyle = "#fff";
  numberContext.fillStyle = "#fff";
  numberContext.lineCap = "round";
  numberContext.lineJoin = "round";
  for (const stroke of numberStrokes) {
    numberContext.lineWidth = stroke.width;
    const [first, ...rest] = stroke.points;
    numberContext.beginPath();
    if (rest.length === 0) {
      numberContext.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
      numberContext.fill();
      continue;
    }
    numberContext.moveTo(first[0], first[1]);
    for (const [x, y] of rest) numberContext.lineTo(x, y);
    numberContext.stroke();
  }
  numberUndo.disabled = numberStrokes.length === 0 && !number.image;
}

function numberPoint(event) {
  const box = numberCanvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) / box.width) * numberCanvas.width,
    ((event.clientY - box.top) / box.height) * numberCanvas.height,
  ];
}

numberCanvas.addEventListener("pointerdown", (event) => {
  if (number.pointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  if (number.image) { number.image = null; number.place = null; }
  number.pointer = event.pointerId;
  numberCanvas.setPointerCapture(event.pointerId);
  const pressure = event.pointerType === "pen" && event.pressure > 0 ? 0.6 + 0.8 * event.pressure : 1;
  number.stroke = { width: NUMBER_STROKE_WIDTH * pressure, points: [numberPoint(event)] };
  numberStrokes.push(number.stroke);
  numberRepaint();
});

numberCanvas.addEventListener("pointermove", (event) => {
  if (event.pointerId !== number.pointer) return;
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const move of moves.length ? moves : [event]) number.stroke.points.push(numberPoint(move));
  numberRepaint();
  if (number.timer === null) {
    number.timer = setTimeout(() => { number.timer = null; readCanvas(); }, WHILE_DRAWING_MS);
  }
});

function endNumberStroke(event) {
  if (event.pointerId !== number.pointer) return;
  number.pointer = null;
  number.stroke = null;
  clearTimeout(number.timer);
  number.timer = null;
  readCanvas();
}
numberCanvas.addEventListener("pointerup", endNumberStroke);
numberCanvas.addEventListener("pointercancel", endNumberStroke);

function numberUndoStroke() {
  if (number.pointer !== null) return;
  if (numberStrokes.length) numberStrokes.pop(); else number.image = null;
  numberRepaint();
  if (numberStrokes.length) readCanvas(); else numberEmpty();
}

function numberClearAll() {
  numberStrokes.length = 0;
  number.image = null;
  numberRepaint();
  numberEmpty();
}
numberUndo.addEventListener("click", numberUndoStroke);
numberClear.addEventListener("click", numberClearAll);
// Captured before the one-digit mode's shortcuts, which then do not see the key.
window.addEventListener("keydown", (event) => {
  if (numberMode.hidden) return;
  const typing = event.target instanceof HTMLInputElement && event.target.type !== "file";
  if (typing) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    event.stopImmediatePropagation();
    numberUndoStroke();
  } else if (event.key === "Escape") {
    event.stopImmediatePropagation();
    numberClearAll();
  }
}, true);

numberFile.addEventListener("change", () => {
  const file = numberFile.files[0];
  numberFile.value = "";
  if (!file) return;
  numberStrokes.length = 0;
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    // Shown fitted into the canvas; the answer's boxes are in the file's pixels.
    const scale = Math.min(numberCanvas.width / image.width, numberCanvas.height / image.height);
    number.image = image;
    number.place = { scale, x: (numberCanvas.width - image.width * scale) / 2,
      y: (numberCanvas.height - image.height * scale) / 2 };
    numberRepaint();
    URL.revokeObjectURL(url);
  };
  image.onerror = () => URL.revokeObjectURL(url);
  image.src = url;
  number.image = null;
  numberRepaint();
  sendNumber(file, file.type || "application/octet-stream");
});

function readCanvas() {
  if (numberStrokes.length === 0) return;
  numberResult.setAttribute("aria-busy", "true");
  if (number.inFlight) { number.again = true; return; }
  number.inFlight = true;
  numberCanvas.toBlob((blob) => sendNumber(blob, "image/png"), "image/png");
}

async function sendNumber(body, contentType) {
  const sent = ++number.sent;
  number.inFlight = true;
  numberResult.setAttribute("aria-busy", "true");
  try {
    const response = await fetch("/api/read", { method: "POST", headers: { "Content-Type": contentType }, body });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (sent < number.shown) return;
    number.shown = sent;
    if (response.ok) showNumber(answer);
    else showNumberError(humanError(response.status, answer.error, "the number"));
  } catch (error) {
    if (sent >= number.shown) showNumberError(humanError(0, String(error), "the number"));
  } finally {
    number.inFlight = false;
    if (number.again) { number.again = false; readCanvas(); } else numberResult.setAttribute("aria-busy", "false");
  }
}

function drawBoxes(digits) {
  boxesContext.clearRect(0, 0, numberBoxes.width, numberBoxes.height);
  const place = number.image ? number.place : { scale: 1, x: 0, y: 0 };
  // Labels stay about 16 px on screen, however small the canvas is shown.
  const perPixel = numberBoxes.width / Math.max(numberBoxes.getBoundingClientRect().width, 1);
  const size = Math.round(Math.min(48, Math.max(22, 16 * perPixel)));
  boxesContext.lineWidth = Math.max(2, perPixel);
  boxesContext.font = `bold ${size}px system-ui, sans-serif`;
  boxesContext.textBaseline = "bottom";
  for (const digit of digits) {
    const [x, y, w, h] = digit.box.map((value) => value * place.scale);
    const colour = digit.uncertain ? "#f0b35a" : "#4ea1ff";
    boxesContext.strokeStyle = colour;
    boxesContext.fillStyle = colour;
    boxesContext.strokeRect(place.x + x, place.y + y, w, h);
    const label = digit.uncertain ? `${digit.label}?` : String(digit.label);
    boxesContext.fillText(label, place.x + x + 2, Math.max(place.y + y - 2, size));
  }
}

function showDigits(digits) {
  numberDigits.replaceChildren(...digits.map((digit) => {
    const item = document.createElement("li");
    const image = document.createElement("img");
    image.src = `data:image/png;base64,${digit.preview_png_base64}`;
    image.alt = `The 28 by 28 image read as ${digit.label}`;
    const label = document.createElement("span");
    label.textContent = digit.uncertain ? `${digit.label}?` : String(digit.label);
    const sure = document.createElement("small");
    sure.textContent = percent(digit.confidence);
    item.className = digit.uncertain ? "uncertain" : "";
    item.append(image, label, sure);
    return item;
  }));
}

function showNumber(answer) {
  drawBoxes(answer.digits);
  showDigits(answer.digits);
  const refused = answer.rejected !== null;
  numberText.classList.toggle("rejected", refused);
  if (refused) {
    numberText.textContent = "–";
    numberMessage.className = "message warn";
    numberMessage.textContent = answer.rejected;
    return;
  }
  // The best reading, always: a low confidence is a flag, as for one digit.
  numberText.textContent = answer.uncertain ? `${answer.text}?` : answer.text;
  const unsure = answer.digits.filter((digit) => digit.uncertain).length;
  numberMessage.className = answer.uncertain ? "message warn" : "message";
  const whole = `${percent(answer.confidence)} sure of the whole number`;
  if (unsure) {
    numberMessage.textContent = `Not sure: ${whole}; ${unsure} digit${unsure > 1 ? "s" : ""} unsure (marked ?)`;
  } else {
    numberMessage.textContent = answer.uncertain ? `Not sure: ${whole}` : whole;
  }
}

function showNumberError(message) {
  drawBoxes([]);
  showDigits([]);
  numberText.textContent = "";
  numberText.classList.remove("rejected");
  numberMessage.className = "message error";
  numberMessage.textContent = message;
}

function numberEmpty() {
  number.shown = ++number.sent;
  number.again = false;
  if (!number.inFlight) numberResult.setAttribute("aria-busy", "false");
  drawBoxes([]);
  showDigits([]);
  numberText.textContent = "";
  numberText.classList.remove("rejected");
  numberMessage.className = "message";
  numberMessage.textContent = "Write a number, its digits side by side, to see what the model reads.";
}

numberRepaint();

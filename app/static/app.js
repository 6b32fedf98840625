// The demo page: draw or drop a digit, see its capsules, edit the winning pose.
//
// Uses only the public API: POST v1/predict and v1/capsules with the same image, the PNG links
// a prediction returns, and POST v1/decode for every pose edit. Decode requests are serialized:
// while one is in flight, slider moves only replace the pose waiting to be sent next, so fast
// moves never pile requests up and the last position is always the one drawn.

const TWEAK_RANGE = 0.25; // the paper's Figure 4 range around the original pose value
const STEP = 0.01;
const AUTO_PREDICT_MS = 450; // after the pen lifts, wait this long for another stroke
const POSE_BOUND = 1; // the API refuses pose values beyond ±1 (a squashed vector's coordinates)

const $ = (id) => document.getElementById(id);
const el = {
  pad: $("pad"), padBox: $("drop-zone"), predict: $("predict"), clear: $("clear"), file: $("file"),
  message: $("message"), result: $("result"), digit: $("digit"), verdict: $("verdict"), bars: $("bars"),
  input: $("input-img"), recon: $("reconstruction"), reconNote: $("recon-note"), digitCheck: $("digit-check"),
  sliders: $("sliders"), reset: $("reset"), preview: $("pose-preview"), tweak: $("tweak"), tweakPlaceholder: $("tweak-placeholder"),
  tweakRows: $("tweak-rows"), tweakMark: $("tweak-mark"),
};

const state = {
  generation: 0, // bumps with every new image, so late answers for an old image are dropped
  digit: null,
  original: null, // the winning capsule's pose as the network gave it
  pose: null, // the pose as edited
  links: null,
  decoding: false,
  pendingPose: null,
  reconUrl: null, // object URL of the current decoded PNG, revoked when replaced
};

// ---------- API ----------

class ApiError extends Error {}

async function errorFrom(response) {
  let message = `the server answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message);
}

async function call(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("cannot reach the service: is it running?");
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

function postImage(path, blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  return call(path, { method: "POST", body: form }).then((r) => r.json());
}

function decodePose(digit, pose) {
  // scale 1, like the prediction's links: the page upscales with crisp pixels itself
  return call("v1/decode", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ digit, pose }),
  }).then((r) => r.blob());
}

// ---------- messages ----------

function showMessage(text, kind = "error") {
  el.message.textContent = text;
  el.message.className = `message ${kind === "error" ? "" : kind}`.trim();
  el.message.dataset.kind = kind;
  el.message.hidden = false;
}

function clearMessage() {
  el.message.hidden = true;
  el.message.textContent = "";
  delete el.message.dataset.kind;
}

// ---------- drawing pad ----------

const ctx = el.pad.getContext("2d");
let drawing = null; // the pointer id drawing now
let hasInk = false;
let autoTimer = null;

function resetPad() {
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, el.pad.width, el.pad.height);
  ctx.strokeStyle = "#000000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = el.pad.width / 14; // about MNIST's stroke width relative to the digit
  hasInk = false;
  el.padBox.classList.remove("has-ink");
}

function padPoint(event) {
  const box = el.pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * el.pad.width) / box.width,
    ((event.clientY - box.top) * el.pad.height) / box.height,
  ];
}

function markInk() {
  hasInk = true;
  el.padBox.classList.add("has-ink");
}

el.pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  el.pad.setPointerCapture(event.pointerId);
  drawing = event.pointerId;
  clearTimeout(autoTimer);
  const [x, y] = padPoint(event);
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 0.01, y); // a dot for a tap
  ctx.stroke();
  markInk();
});

el.pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const [x, y] = padPoint(e);
    ctx.lineTo(x, y);
  }
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(...padPoint(event));
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  drawing = null;
  clearTimeout(autoTimer);
  autoTimer = setTimeout(predictPad, AUTO_PREDICT_MS);
}
el.pad.addEventListener("pointerup", endStroke);
el.pad.addEventListener("pointercancel", endStroke);

function padBlob() {
  return new Promise((resolve) => el.pad.toBlob(resolve, "image/png"));
}

async function predictPad() {
  clearTimeout(autoTimer);
  analyse(await padBlob(), "drawing.png");
}

// Shows a dropped or chosen image on the pad, when the browser can decode it; the server gets
// the original file either way and decides whether it is an image.
async function showOnPad(file) {
  resetPad();
  try {
    const bitmap = await createImageBitmap(file);
    const side = el.pad.width;
    const k = Math.min(side / bitmap.width, side / bitmap.height);
    const [w, h] = [bitmap.width * k, bitmap.height * k];
    ctx.imageSmoothingEnabled = bitmap.width > side / 4; // keep tiny images (28x28) crisp
    ctx.drawImage(bitmap, (side - w) / 2, (side - h) / 2, w, h);
    markInk();
  } catch {
    // not an image the browser can draw: the server's answer says what is wrong
  }
}

function useFile(file) {
  if (!file) return;
  clearTimeout(autoTimer);
  showOnPad(file);
  analyse(file, file.name || "upload");
}

el.clear.addEventListener("click", () => {
  clearTimeout(autoTimer);
  resetPad();
  clearMessage();
});
el.predict.addEventListener("click", predictPad);
el.file.addEventListener("change", () => {
  useFile(el.file.files[0]);
  el.file.value = ""; // choosing the same file again is a new upload
});

for (const target of [el.padBox, document.body]) {
  target.addEventListener("dragover", (event) => {
    event.preventDefault();
    el.padBox.classList.add("dragging");
  });
}
document.body.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) el.padBox.classList.remove("dragging");
});
document.body.addEventListener("drop", (event) => {
  event.preventDefault();
  el.padBox.classList.remove("dragging");
  useFile(event.dataTransfer && event.dataTransfer.files[0]);
});

// ---------- one image through the API ----------

async function analyse(blob, name) {
  const generation = ++state.generation;
  el.result.setAttribute("aria-busy", "true");
  document.body.dataset.state = "busy";
  try {
    const [predicted, capsules] = await Promise.all([
      postImage("v1/predict", blob, name),
      postImage("v1/capsules", blob, name),
    ]);
    if (generation !== state.generation) return;
    clearMessage();
    showPrediction(predicted.predictions[0], capsules.capsules[0]);
    document.body.dataset.state = "done";
  } catch (error) {
    if (generation !== state.generation) return;
    showMessage(error instanceof ApiError ? error.message : `unexpected error: ${error.message}`);
    document.body.dataset.state = "error";
  } finally {
    if (generation === state.generation) el.result.setAttribute("aria-busy", "false");
  }
}

function showPrediction(prediction, capsule) {
  const digit = prediction.digit;
  const scores = prediction.scores;
  state.digit = digit;
  state.links = prediction.links;
  state.original = capsule.poses[digit].slice();
  state.pose = state.original.slice();
  state.pendingPose = null;

  el.digit.textContent = String(digit);
  const sure = scores[digit];
  const runnerUp = scores.map((s, d) => [s, d]).filter(([, d]) => d !== digit).sort((a, b) => b[0] - a[0])[0];
  el.verdict.innerHTML = "";
  el.verdict.append(
    "Capsule ", strong(String(digit)), " is the longest at ", strong(sure.toFixed(2)),
    `; next is ${runnerUp[1]} at ${runnerUp[0].toFixed(2)}.`,
    sure < 0.5 ? " No capsule is long: the network is not sure this is a digit." : "",
  );
  renderBars(scores, digit);
  showDigitCheck(prediction);
  showImage(el.input, prediction.links.input);
  setReconstruction(prediction.links.reconstruction, "from 16 numbers");
  showImage(el.tweak, prediction.links.tweak);
  el.tweakPlaceholder.hidden = true;
  renderTweakRows();
  renderSliders(state.original);
  el.reset.disabled = false;
}

// The server's digit check: is_digit is false when the decoder's redrawing is far from the input
// or no capsule is long (null when the model card has no calibrated thresholds).
const NOT_A_DIGIT = "This does not look like a digit to the model.";

function showDigitCheck(prediction) {
  const notDigit = prediction.is_digit === false;
  document.body.classList.toggle("not-digit", notDigit);
  el.digitCheck.hidden = !notDigit;
  if (!notDigit) return;
  el.digitCheck.textContent = `${NOT_A_DIGIT} Its redrawing from the winning capsule (right) is far ` +
    `from what it saw (left): reconstruction error ${prediction.reconstruction_error.toFixed(1)}.`;
  showMessage(`${NOT_A_DIGIT} Compare the input with its reconstruction below.`, "warning");
}

function strong(text) {
  const node = document.createElement("strong");
  node.textContent = text;
  return node;
}

function showImage(img, src) {
  img.src = src;
  img.hidden = false;
}

function setReconstruction(src, note) {
  if (state.reconUrl && state.reconUrl !== src) URL.revokeObjectURL(state.reconUrl);
  state.reconUrl = src.startsWith("blob:") ? src : null;
  showImage(el.recon, src);
  showImage(el.preview, src); // a small copy beside the sliders, for phones that scroll
  el.reconNote.textContent = note;
}

// ---------- capsule lengths ----------

function renderBars(scores, winner) {
  el.bars.replaceChildren(...scores.map((score, digit) => {
    const item = document.createElement("li");
    item.className = digit === winner ? "win" : "";
    item.dataset.digit = String(digit);
    item.innerHTML = `<span class="label">${digit}</span>
      <span class="track" role="meter" aria-valuemin="0" aria-valuemax="1"><span class="fill"></span></span>
      <span class="value">${score.toFixed(2)}</span>`;
    const meter = item.querySelector(".track");
    meter.setAttribute("aria-valuenow", score.toFixed(3));
    meter.setAttribute("aria-label", `capsule ${digit} length`);
    // set the width on the next frame so the bar animates from its old value
    requestAnimationFrame(() => { item.querySelector(".fill").style.width = `${Math.min(score, 1) * 100}%`; });
    return item;
  }));
}

// ---------- tweak grid: one row per pose dimension, marked when its slider is in use ----------

function renderTweakRows() {
  el.tweakRows.replaceChildren(...Array.from({ length: 16 }, (_, i) => {
    const item = document.createElement("li");
    item.textContent = String(i); // numbered 0-15, as the API numbers them (dims=)
    return item;
  }));
  el.tweakMark.hidden = true;
}

function markTweakRow(i) {
  el.tweakMark.hidden = false;
  el.tweakMark.style.top = `${(100 * i) / 16}%`;
  el.tweakRows.querySelectorAll("li").forEach((item, j) => item.classList.toggle("on", i === j));
}

// ---------- pose sliders ----------

function renderSliders(pose) {
  el.sliders.replaceChildren(...pose.map((value, i) => {
    const row = document.createElement("div");
    row.className = "slider";
    const id = `pose-${i}`;
    row.innerHTML = `<label for="${id}">dim ${String(i).padStart(2, "0")}</label>
      <input type="range" id="${id}" data-dim="${i}">
      <output for="${id}">±0.00</output>`;
    const input = row.querySelector("input");
    input.min = Math.max(value - TWEAK_RANGE, -POSE_BOUND).toFixed(4);
    input.max = Math.min(value + TWEAK_RANGE, POSE_BOUND).toFixed(4);
    input.step = String(STEP);
    input.value = value.toFixed(4);
    input.setAttribute("aria-label", `pose dimension ${i}`);
    input.setAttribute("aria-valuetext", "unchanged");
    input.addEventListener("input", () => onSlider(input, row, i));
    input.addEventListener("focus", () => markTweakRow(i));
    input.addEventListener("pointerdown", () => markTweakRow(i));
    return row;
  }));
}

function onSlider(input, row, i) {
  const delta = Number(input.value) - state.original[i];
  const text = Math.abs(delta) < STEP / 2 ? "±0.00" : `${delta > 0 ? "+" : "−"}${Math.abs(delta).toFixed(2)}`;
  row.querySelector("output").textContent = text;
  row.classList.toggle("moved", text !== "±0.00");
  input.setAttribute("aria-valuetext", text === "±0.00" ? "unchanged" : `${text} from the original`);
  state.pose[i] = Number(input.value);
  requestDecode();
}

el.reset.addEventListener("click", () => {
  if (!state.original) return;
  state.pose = state.original.slice();
  state.pendingPose = null;
  renderSliders(state.original);
  setReconstruction(state.links.reconstruction, "from 16 numbers");
});

// Serialized: one decode in flight at most; moves meanwhile only replace the next pose to send.
function requestDecode() {
  state.pendingPose = { digit: state.digit, pose: state.pose.slice(), generation: state.generation };
  if (!state.decoding) decodeLoop();
}

async function decodeLoop() {
  state.decoding = true;
  el.recon.classList.add("updating");
  try {
    while (state.pendingPose) {
      const job = state.pendingPose;
      state.pendingPose = null;
      try {
        const png = await decodePose(job.digit, job.pose);
        if (job.generation !== state.generation) continue;
        setReconstruction(URL.createObjectURL(png), "from the edited pose");
        el.recon.dataset.decodes = String(Number(el.recon.dataset.decodes || 0) + 1);
      } catch (error) {
        if (job.generation === state.generation) showMessage(error.message);
      }
    }
  } finally {
    state.decoding = false;
    el.recon.classList.remove("updating");
  }
}

resetPad();
document.body.dataset.state = "idle";

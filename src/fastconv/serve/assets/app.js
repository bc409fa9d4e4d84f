// fastconv serve: the drawing pad and what the network makes of it.
// Plain script, no library: the page must work offline, from the package alone.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusLine = document.getElementById("status");
const prediction = document.getElementById("prediction");
// Dark ink on white paper, as a digit on paper: the server's preprocessing
// (the same as `fastconv predict`) inverts and centres it the MNIST way.
const INK = "#000";
const PAPER = "#fff";
const STROKE = 22;

let drawing = null;      // the pointer drawing the current stroke
let hasInk = false;
let asked = 0;           // requests sent; only the latest one's answer is shown

function clearPad() {
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
}

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function at(event) {
  // Pointer position in canvas pixels, whatever size CSS shows it at.
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

function dot(x, y) {
  ctx.beginPath();
  ctx.arc(x, y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fillStyle = INK;
  ctx.fill();
}

pad.addEventListener("pointerdown", (event) => {
  if (drawing !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = event.pointerId;
  const [x, y] = at(event);
  dot(x, y);
  ctx.beginPath();
  ctx.moveTo(x, y);
  hasInk = true;
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  // Coalesced events keep a fast stroke smooth where the browser batches them.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of (events.length ? events : [event])) {
    const [x, y] = at(e);
    ctx.lineTo(x, y);
  }
  ctx.strokeStyle = INK;
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.stroke();
  const [x, y] = at(event);
  ctx.beginPath();
  ctx.moveTo(x, y);
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  drawing = null;
  ask();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  asked += 1;  // an answer still on its way is for the old drawing
  prediction.textContent = "";
  document.getElementById("probabilities").replaceChildren();
  document.getElementById("feature-maps").replaceChildren();
  paintPlanes(document.getElementById("input-view"), null);
  say("");
});

document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const url = URL.createObjectURL(file);
  const picture = new Image();
  picture.onload = () => {
    // Fit the picture into the pad; the server then reads the pad's PNG.
    clearPad();
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const w = picture.width * scale, h = picture.height * scale;
    ctx.drawImage(picture, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
    hasInk = true;
    ask();
  };
  picture.onerror = () => { URL.revokeObjectURL(url); say(`cannot read ${file.name}`, true); };
  picture.src = url;
  event.target.value = "";
});

function padPng() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

async function post(path, body) {
  const answer = await fetch(path, {method: "POST", headers: {"Content-Type": "image/png"}, body});
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}

async function ask() {
  if (!hasInk) return;
  const mine = ++asked;
  try {
    const reading = await post("api/predict", await padPng());
    if (mine === asked) show(reading);
  } catch (err) {
    if (mine === asked) say(err.message, true);
  }
}

// A {shape: [K, H, W], data: base64 of K*H*W bytes} stack of gray planes.
function planes(stack) {
  const raw = atob(stack.data);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const [k, h, w] = stack.shape.length === 3 ? stack.shape : [1, ...stack.shape];
  const out = [];
  for (let i = 0; i < k; i++) out.push({h, w, values: bytes.subarray(i * h * w, (i + 1) * h * w)});
  return out;
}

function paintPlanes(canvas, plane) {
  const c = canvas.getContext("2d");
  if (plane === null) { c.clearRect(0, 0, canvas.width, canvas.height); return; }
  canvas.width = plane.w;
  canvas.height = plane.h;
  const image = c.createImageData(plane.w, plane.h);
  for (let i = 0; i < plane.values.length; i++) {
    const v = plane.values[i];
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  c.putImageData(image, 0, 0);
}

function grid(stack, title) {
  const box = document.createElement("div");
  box.className = "grid";
  planes(stack).forEach((plane, i) => {
    const canvas = document.createElement("canvas");
    canvas.title = `${title} ${i + 1}`;
    paintPlanes(canvas, plane);
    box.appendChild(canvas);
  });
  return box;
}

function showBars(probabilities, best) {
  const chart = document.getElementById("probabilities");
  chart.replaceChildren();
  probabilities.forEach((p, k) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (k === best ? " top" : "");
    bar.dataset.digit = String(k);
    bar.dataset.probability = p.toFixed(4);
    bar.title = `${k}: ${(100 * p).toFixed(1)}%`;
    // Built node by node: the page's policy forbids inline style attributes.
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = p >= 0.005 ? `${Math.round(100 * p)}%` : "";
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.height = `${(100 * p).toFixed(1)}%`;
    track.appendChild(fill);
    const digit = document.createElement("span");
    digit.className = "digit";
    digit.textContent = String(k);
    bar.append(value, track, digit);
    chart.appendChild(bar);
  });
}

function show(reading) {
  prediction.textContent = String(reading.prediction);
  prediction.dataset.answers = String(Number(prediction.dataset.answers || 0) + 1);
  showBars(reading.probabilities, reading.prediction);
  paintPlanes(document.getElementById("input-view"), planes(reading.input)[0]);
  const maps = document.getElementById("feature-maps");
  maps.replaceChildren();
  for (const layer of reading.feature_maps) {
    const section = document.createElement("div");
    section.className = "layer";
    section.dataset.layer = layer.name;
    const [k, h, w] = layer.shape;
    const title = document.createElement("h3");
    title.textContent = `${layer.name}: ${k} maps of ${h}×${w}`;
    section.appendChild(title);
    section.appendChild(grid(layer, layer.name));
    maps.appendChild(section);
  }
  const [best, p] = reading.top[0];
  say(`${best} with probability ${(100 * p).toFixed(1)}%`);
}

async function keep() {
  const label = document.getElementById("keep-label").value;
  if (!hasInk) { say("draw a digit first", true); return; }
  try {
    const answer = await post(`api/save?label=${encodeURIComponent(label)}`, await padPng());
    const count = answer.saved_counts[label] || 0;
    say(`kept as ${answer.saved} (${count} drawing${count === 1 ? "" : "s"} of ${label})`);
  } catch (err) {
    say(err.message, true);
  }
}

async function start() {
  clearPad();
  const answer = await fetch("api/model");
  const model = await answer.json();
  document.getElementById("model-line").textContent =
    `${model.model}: input ${model.input_dim.join("×")}, ${model.classes} classes, ` +
    `${model.convolutions.length} convolution layer${model.convolutions.length === 1 ? "" : "s"}`;
  if (model.filters) {
    const [k, h, w] = model.filters.shape;
    document.getElementById("filters-title").textContent =
      `${model.filters.name}'s filters: ${k} of ${h}×${w}`;
    document.getElementById("filters").replaceChildren(grid(model.filters, "filter"));
  }
  if (model.save) {
    const select = document.getElementById("keep-label");
    for (let k = 0; k < Math.min(model.classes, 10); k++) {
      const option = document.createElement("option");
      option.value = option.textContent = String(k);
      select.appendChild(option);
    }
    document.getElementById("keep").hidden = false;
    document.getElementById("keep-button").addEventListener("click", keep);
  }
}

start().catch((err) => say(`cannot reach the server: ${err.message}`, true));

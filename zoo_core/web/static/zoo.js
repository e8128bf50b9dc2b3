// zoo serve / zoo site: sortable tables, a training run's page kept up to date, and the
// try-it box of a model card. Plain DOM, no library; every text goes in as text.
"use strict";

function cellKey(row, index, kind) {
  const cell = row.cells[index];
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  if (kind === "number") return raw === "" ? null : Number(raw);
  return raw.toLowerCase();
}

function sortBy(table, th) {
  const index = Array.from(th.parentNode.children).indexOf(th);
  const kind = th.dataset.kind || "text";
  const descending = th.getAttribute("aria-sort") === "ascending";
  for (const other of th.parentNode.children) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).map((row, i) => [cellKey(row, index, kind), i, row]);
  rows.sort((a, b) => {
    if (a[0] === null || b[0] === null) return (a[0] === null) - (b[0] === null) || a[1] - b[1];
    const order = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
    return descending ? -order : order;
  });
  for (const [, , row] of rows) body.appendChild(row);
}

function setUpSorting() {
  for (const table of document.querySelectorAll("table.sortable")) {
    for (const th of table.tHead ? table.tHead.rows[0].cells : []) {
      const button = th.querySelector("button.sort");
      if (button) button.addEventListener("click", () => sortBy(table, th));
    }
  }
}

// -- a run still training ---------------------------------------------------------------------

const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(2) + " %");
const num = (v, d = 4) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));

function epochRow(e) {
  const tr = document.createElement("tr");
  for (const text of [String(e.epoch), num(e.train_loss), pct(e.train_accuracy), num(e.val_loss),
                      pct(e.val_accuracy), e.seconds == null ? "-" : num(e.seconds, 1) + "s"]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

function showRun(run) {
  const status = document.getElementById("status");
  status.textContent = run.status;
  status.className = "status status-" + run.status.split(" ")[0];
  const epochs = run.config && run.config.epochs !== undefined ? run.config.epochs : "?";
  document.getElementById("progress").textContent = `epoch ${run.epochs_run} of ${epochs}`;
  document.getElementById("best-epoch").textContent = run.best_epoch === null ? "-" : run.best_epoch;
  document.getElementById("val-acc").textContent = pct(run.val_accuracy);
  document.getElementById("test-acc").textContent = pct(run.test_accuracy);
  const body = document.querySelector("#epochs tbody");
  body.replaceChildren(...run.epochs.map(epochRow));
}

function followRun() {
  const box = document.getElementById("run");
  if (!box || box.dataset.live !== "yes") return;
  const poll = async () => {
    try {
      const answer = await fetch(box.dataset.json, {cache: "no-store"});
      if (!answer.ok) return setTimeout(poll, 5000);
      const run = await answer.json();
      showRun(run);
      if (run.status === "running" || run.status === "queued") setTimeout(poll, 2000);
      else box.dataset.live = "no";
    } catch (e) {
      setTimeout(poll, 5000);
    }
  };
  setTimeout(poll, 2000);
}

// -- try it -------------------------------------------------------------------------------------

function showAnswer(answer) {
  const list = document.getElementById("try-result");
  const error = document.getElementById("try-error");
  list.replaceChildren();
  error.textContent = "";
  if (answer.error) { error.textContent = answer.error; return; }
  for (const t of answer.predictions[0].top) {
    const li = document.createElement("li");
    li.textContent = `${t.class} ${(100 * t.probability).toFixed(2)} %`;
    li.dataset.classId = t.class_id;
    list.appendChild(li);
  }
  if (answer.notes && answer.notes.length) error.textContent = answer.notes.join(" ");
}

async function classify(box, body) {
  const invert = document.getElementById("try-invert").checked ? "&invert=1" : "";
  try {
    const answer = await fetch(box.dataset.url + invert, {method: "POST", body: body,
      headers: {"Content-Type": "application/octet-stream"}});
    showAnswer(await answer.json());
  } catch (e) {
    showAnswer({error: "the server did not answer: " + e});
  }
}

function setUpCanvas(box, canvas) {
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const at = (event) => {
    const r = canvas.getBoundingClientRect();
    return [(event.clientX - r.left) * canvas.width / r.width,
            (event.clientY - r.top) * canvas.height / r.height];
  };
  const dot = (event) => {
    const [x, y] = at(event);
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(x, y, 1.4, 0, 2 * Math.PI);
    ctx.fill();
  };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; dot(e); });
  canvas.addEventListener("pointermove", (e) => { if (drawing) dot(e); });
  window.addEventListener("pointerup", () => { drawing = false; });
  document.getElementById("try-clear").addEventListener("click", clear);
  document.getElementById("try-classify").addEventListener("click", () => {
    canvas.toBlob((blob) => classify(box, blob), "image/png");
  });
}

function setUpTry() {
  const box = document.getElementById("try");
  if (!box) return;
  document.getElementById("try-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) classify(box, file);
  });
  const canvas = document.getElementById("try-canvas");
  if (canvas) setUpCanvas(box, canvas);
}

document.addEventListener("DOMContentLoaded", () => {
  setUpSorting();
  followRun();
  setUpTry();
});

// The fleet page: fetches v1/fleet and draws it as SVG.  Values come from
// reports, i.e. from anyone: they are only ever set as text, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const DIMENSIONS = ["extension_version", "postgresql_version", "os_name"];
const ROW = 24, LABEL_W = 100, COUNT_W = 86, WIDTH = 340, MAX_ROWS = 12, MAX_LABEL = 15;

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function drawChart(svg, rows) {
  svg.replaceChildren();
  const shown = rows.slice(0, MAX_ROWS);
  if (rows.length > MAX_ROWS) {
    const rest = rows.slice(MAX_ROWS);
    shown.push({
      value: `${rest.length} others`,
      databases: rest.reduce((n, r) => n + r.databases, 0),
      share: rest.reduce((n, r) => n + r.share, 0),
    });
  }
  const height = Math.max(1, shown.length) * ROW + 4;
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  if (shown.length === 0) {
    svg.append(svgEl("text", { x: 0, y: 18, class: "empty" }, "no active databases"));
    return;
  }
  const max = Math.max(...shown.map((r) => r.databases));
  const barSpace = WIDTH - LABEL_W - COUNT_W;
  shown.forEach((r, i) => {
    const y = i * ROW + 2;
    const g = svgEl("g", { class: "bar", "data-value": r.value, "data-databases": r.databases });
    const label = r.value.length > MAX_LABEL ? r.value.slice(0, MAX_LABEL - 1) + "…" : r.value;
    g.append(svgEl("title", {}, `${r.value}: ${r.databases} databases`));
    g.append(svgEl("text", { x: 0, y: y + 16, class: "label" }, label));
    const w = Math.max(2, (r.databases / max) * barSpace);
    g.append(svgEl("rect", { x: LABEL_W, y: y + 3, width: w.toFixed(1), height: ROW - 7, rx: 2 }));
    g.append(svgEl("text", { x: (LABEL_W + w + 5).toFixed(1), y: y + 16, class: "count" },
      `${r.databases} (${(r.share * 100).toFixed(1)}%)`));
    svg.append(g);
  });
}

function render(data) {
  setText("active-7", data.active.last_7_days.toLocaleString("en"));
  setText("active-30", data.active.last_30_days.toLocaleString("en"));
  setText("generated-at", `As of ${data.generated_at}.`);
  setText("share-note", `Shares: each database active in the last ${data.share_window_days} days, by its latest report.`);
  for (const dim of DIMENSIONS) drawChart(document.getElementById(`chart-${dim}`), data.share[dim]);
  const restored = data.restored_from_dump;
  setText("restored-databases", restored.restored_databases.toLocaleString("en"));
  setText("restored-exports", restored.exports.toLocaleString("en"));
  const body = document.querySelector("#restored tbody");
  body.replaceChildren();
  for (const group of restored.groups) {
    const tr = document.createElement("tr");
    for (const cell of [group.exported_db_uuid, String(group.db_uuids)]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
}

async function load() {
  try {
    const response = await fetch("v1/fleet", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    document.body.dataset.state = "ready";
  } catch (err) {
    const box = document.getElementById("error");
    box.textContent = `Could not load the fleet data: ${err.message}`;
    box.hidden = false;
    document.body.dataset.state = "error";
  }
}

load();

// The fleet page: fetches v1/fleet and draws it: time series with uPlot (vendored,
// static/third_party/uplot/), the fleet now as SVG bars.  Values come from reports, i.e. from
// anyone: they are only ever set as text, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 24, LABEL_W = 165, COUNT_W = 100, WIDTH = 420, MAX_ROWS = 12, MAX_LABEL = 21;
const COLORS = ["#2f6fb0", "#d9822b", "#3c9a5f", "#b8463e", "#7b5ea7", "#8c6d31", "#c2559b", "#5f7a8a"];
const PLOT_HEIGHT = 230;

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

const number = (n) => (n == null ? "–" : n.toLocaleString("en"));
const percent = (share) => (share == null ? "–" : `${(share * 100).toFixed(1)}%`);

function drawBars(svg, rows) {
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
    svg.append(svgEl("text", { x: 0, y: 18, class: "empty" }, "none among the active databases"));
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
      `${number(r.databases)} (${percent(r.share)})`));
    svg.append(g);
  });
}

// A uPlot time series; `series` is [{label, values, bars?}], x is the list of UTC days.
function drawSeries(el, days, series, { share = false } = {}) {
  el.replaceChildren();
  if (days.length === 0 || series.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "no reports rolled up yet";
    el.append(p);
    return;
  }
  const x = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const format = share ? percent : number;
  const opts = {
    width: Math.max(300, el.clientWidth),
    height: PLOT_HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: { time: true },
      y: share ? { range: [0, 1] } : { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] },
    },
    axes: [
      { stroke: "#3d4852", grid: { stroke: "#eef0f2" } },
      {
        stroke: "#3d4852", grid: { stroke: "#eef0f2" }, size: 56,
        values: (u, values) => values.map((v) => (share ? `${Math.round(v * 100)}%` : number(v))),
      },
    ],
    series: [
      { value: (u, ts) => (ts == null ? "–" : new Date(ts * 1000).toISOString().slice(0, 10)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        fill: s.bars ? `${COLORS[i % COLORS.length]}cc` : undefined,
        width: s.bars ? 1 : 2,
        paths: s.bars ? uPlot.paths.bars({ size: [0.6, 14], align: i === 0 ? -1 : 1 }) : undefined,
        points: { show: days.length < 45 && !s.bars },
        spanGaps: true,
        value: (u, v) => format(v),
      })),
    ],
    legend: { live: true },
  };
  // eslint-disable-next-line no-new
  new uPlot(opts, [x, ...series.map((s) => s.values)], el);
}

function drawAdoptionTable(releases, lastIndex) {
  const body = document.querySelector("#adoption tbody");
  body.replaceChildren();
  for (const r of [...releases].reverse()) {
    const tr = document.createElement("tr");
    tr.dataset.release = r.release;
    const days = (n) => (r.listed_before_first_report ? "listed before the first report"
      : n == null ? "not yet" : `${n} days`);
    for (const cell of [r.release, r.released, days(r.days_to_50_percent), days(r.days_to_90_percent),
      percent(r.share[lastIndex])]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
}

function render(data) {
  setText("active-7", number(data.active.last_7_days));
  setText("active-30", number(data.active.last_30_days));
  setText("new-30", number(data.now.new_last_30_days));
  setText("quiet-30", number(data.now.gone_quiet_last_30_days));
  const restored = data.restored_from_dump;
  setText("restored-databases", number(restored.restored_databases));
  setText("restored-exports", number(restored.exports));
  const utd = data.up_to_date;
  setText("up-to-date", percent(utd.now));
  setText("up-to-date-caption", utd.newest_release ? `on the newest release, ${utd.newest_release}` : "no release listed");
  setText("as-of", data.rolled_up_to
    ? `Rolled up to ${data.rolled_up_to.slice(0, 16).replace("T", " ")} UTC; last ${data.days} days.`
    : "Nothing rolled up yet: run the rollup command.");
  setText("now-note", `Each of the ${number(data.now.databases)} databases active in the last ` +
    `${data.window_days} days, by its latest report; versions in release order.`);
  for (const link of ["export-activity", "export-daily"]) {
    const a = document.getElementById(link);
    a.href = `${a.getAttribute("href").split("?")[0]}?days=${data.days}`;
  }

  const a = data.activity;
  drawSeries(document.getElementById("chart-active"), a.days, [
    { label: "reported that day", values: a.reporting },
    { label: "last 7 days", values: a.active_7_days },
    { label: "last 30 days", values: a.active_30_days },
  ]);
  drawSeries(document.getElementById("chart-churn"), a.days, [
    { label: "new", values: a.new, bars: true },
    { label: "gone quiet", values: a.gone_quiet, bars: true },
  ]);
  const adoption = data.adoption;
  drawSeries(document.getElementById("chart-adoption"), adoption.days,
    adoption.releases.map((r) => ({ label: `${r.release} or newer`, values: r.share })), { share: true });
  drawSeries(document.getElementById("chart-up-to-date"), utd.days,
    [{ label: "up to date", values: utd.share }], { share: true });
  const adv = data.advisories;
  setText("security-share", percent(adv.now.security_share));
  setText("end-of-life-share", percent(adv.now.end_of_life_share));
  drawSeries(document.getElementById("chart-advisories"), adv.days, [
    { label: "security fix outstanding", values: adv.security_share },
    { label: "end-of-life series", values: adv.end_of_life_share },
  ], { share: true });
  drawAdoptionTable(adoption.releases, adoption.days.length - 1);
  // Each bar chart of the page (index.html, <svg id="chart-DIMENSION" class="chart">) draws that
  // dimension of the fleet now; the dimensions are the roll-up's, as the JSON carries them.
  for (const svg of document.querySelectorAll("svg.chart")) drawBars(svg, data.now[svg.id.replace(/^chart-/, "")]);
}

async function load() {
  try {
    const days = new URLSearchParams(window.location.search).get("days");
    const query = days && /^[0-9]{1,4}$/.test(days) ? `?days=${days}` : "";
    const response = await fetch(`v1/fleet${query}`, { headers: { Accept: "application/json" } });
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

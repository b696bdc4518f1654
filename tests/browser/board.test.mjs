// The supervisor board, live, in a real browser (Playwright + Debian Chromium, headless): a
// supervisor logs in at 1920×1080 and opens /board; the test posts ratings through the API with a
// window evaluator's key and waits — without reloading — for the board's own numbers to change to
// exactly what was posted; an alert rule fires and its banner appears, then clears when the rule
// is switched off; the month's report downloads from the board; a handler's board covers only
// their department; screenshots at 1920×1080 and 1366×768. Run by deploy/local/test.sh against a
// seeded `hcp serve` with HCP_ALERT_INTERVAL_SECS=1:
//   HCP_URL, HCP_DEMO_PASSWORD, HCP_RATING_KEY (a window_evaluator device key for W-SMZX-01),
//   HCP_SCREENSHOTS (directory).
import { readFileSync } from "node:fs";
import { api, apiLogin, base, check, done, launch, shots, uiLogin } from "./support.mjs";

const ratingKey = process.env.HCP_RATING_KEY;
if (!ratingKey) throw new Error("HCP_RATING_KEY is required");

const kpi = (page, id) => page.locator("#" + id).textContent();
const asNumber = (s) => Number(String(s).replace(/,/g, ""));
const pct = (r) => (r * 100).toFixed(1) + "%";

const admin = await apiLogin("admin");
const supervisor = await apiLogin("dc");
const before = await api(supervisor, "/api/v1/board");
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: "zh-CN", timezoneId: "Asia/Shanghai", acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  let loads = 0;
  page.on("load", () => { loads += 1; });
  await page.goto(base + "/board");
  await uiLogin(page, "dc");
  await page.waitForFunction(() => Number(document.body.dataset.version || 0) >= 1);
  check((await page.locator("#scope-name").textContent()).includes(before.scope.name), `the supervisor's board covers their region (${before.scope.name})`);
  check(asNumber(await kpi(page, "kpi-month-total")) === before.this_month.total, `the month's ratings match the API (${before.this_month.total})`);
  check(await page.locator("#live").textContent() === "实时", "the live indicator is on");

  // Post ratings through the API: 5 of each grade on window W-SMZX-01, bad ones with a tag.
  const run = Date.now();
  const grades = [5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1];
  const bad = grades.filter((g) => g <= 2).length;
  const good = grades.filter((g) => g >= 3).length;
  const todayBefore = asNumber(await kpi(page, "kpi-today-total"));
  const badBefore = asNumber(await kpi(page, "kpi-today-bad"));
  check(todayBefore === before.today.total, `today's total on the board (${todayBefore}) is the API's before posting`);
  const marker = await page.evaluate(() => (window.__boardMarker = Math.random()));
  let lastAccepted = 0;
  for (const [i, grade] of grades.entries()) {
    const r = await fetch(base + "/api/v1/ratings", {
      method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + ratingKey },
      body: JSON.stringify({
        channel: "window_evaluator", stage: "acceptance", service_record_no: `BOARD-${run}-${i}`, grade,
        tags: grade <= 2 ? ["long_wait"] : [], window_id: "W-SMZX-01", department_id: "D-SJ",
        dimensions: { service_attitude: grade },
      }),
    });
    check(r.status === 202, `rating ${i + 1} (grade ${grade}) accepted with 202`);
    lastAccepted = Date.now();
  }
  const expectedTotal = todayBefore + grades.length;
  await page.waitForFunction(([id, n]) => Number(document.getElementById(id).textContent.replace(/,/g, "")) === n,
    ["kpi-today-total", expectedTotal], { polling: 20 });
  const latency = Date.now() - lastAccepted;
  check(latency < 5000, `the board showed all ${grades.length} new ratings ${latency} ms after the last 202, without a reload`);
  check(loads === 1 && await page.evaluate(() => window.__boardMarker) === marker, "the page was never reloaded");
  await page.waitForFunction(([id, n]) => Number(document.getElementById(id).textContent.replace(/,/g, "")) === n, ["kpi-today-bad", badBefore + bad]);
  check(true, `today's 差评 went from ${badBefore} to ${badBefore + bad}`);
  const after = await api(supervisor, "/api/v1/board");
  check(after.today.total === expectedTotal && after.today.good === before.today.good + good, "the API agrees with the board");
  check(await kpi(page, "kpi-today-rate") === pct(after.today.satisfaction_rate), `today's 好评率 shows ${pct(after.today.satisfaction_rate)}`);
  const evaluator = after.channels.find((c) => c.id === "window_evaluator");
  const evaluatorBefore = before.channels.find((c) => c.id === "window_evaluator");
  check(evaluator && evaluator.total === (evaluatorBefore ? evaluatorBefore.total : 0) + grades.length, "the channel split counts them under 窗口评价器");
  check(after.bad_tags.some((t) => t.tag === "long_wait"), "the 差评 tag is among the month's top tags");
  // Satisfaction per evaluation dimension: the posted 服务态度 grades, in the API and on the page.
  const attitude = after.dimensions.find((d) => d.code === "service_attitude");
  const attitudeBefore = (before.dimensions || []).find((d) => d.code === "service_attitude");
  check(attitude && attitude.today.total === (attitudeBefore ? attitudeBefore.today.total : 0) + grades.length,
    `the snapshot counts today's 服务态度 grades (${attitude && attitude.today.total})`);
  const row = page.locator("#dimensions tr[data-dimension=service_attitude]");
  await row.filter({ hasText: pct(attitude.today.satisfaction_rate) }).waitFor();
  const cells = await row.locator("td").allTextContents();
  check(cells[0] === "服务态度" && asNumber(cells[1]) === attitude.today.total && cells[2] === pct(attitude.today.satisfaction_rate),
    `the 分项评价 table shows 服务态度 today: ${cells.join(" / ")}`);
  await page.screenshot({ path: `${shots}/board-1920.png`, fullPage: true });

  // An alert rule: two 差评 on one window within an hour. It fires, the banner appears; switched off, it clears.
  const rule = { name: "窗口差评预警(测试)", scope: "window", kind: "bad_at_least", threshold: 2, min_ratings: 1, window_minutes: 60, enabled: true };
  await api(admin, `/api/v1/alert-rules/board-test-${run}`, "PUT", rule);
  const banner = page.locator("#alerts");
  await banner.filter({ hasText: rule.name }).waitFor();
  const text = await banner.textContent();
  check(text.includes("综合受理1号窗"), "the alert banner names the window (综合受理1号窗)");
  check(await banner.getAttribute("role") === "alert", "the banner is announced (role=alert)");
  await page.screenshot({ path: `${shots}/board-alert-1920.png`, fullPage: true });
  await api(admin, `/api/v1/alert-rules/board-test-${run}`, "PUT", { ...rule, enabled: false });
  await page.waitForFunction((name) => !document.getElementById("alerts").textContent.includes(name), rule.name);
  check(true, "the banner clears when the rule no longer holds");

  // The month's performance report downloads from the board (the supervisor's region).
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#report").click()]);
  const file = await download.path();
  const bytes = readFileSync(file);
  check(download.suggestedFilename() === `hcp-report-${after.month}.xlsx`, `the report downloads as ${download.suggestedFilename()}`);
  check(bytes.length > 1000 && bytes.subarray(0, 2).toString() === "PK", "the report is an XLSX workbook");

  // The supervisor's city ranks its districts; one click opens a district's own board (市 → 区).
  const first = page.locator("#rank-region a").first();
  await first.waitFor();
  const district = await first.textContent();
  const code = new URL(await first.evaluate((a) => a.href)).searchParams.get("region");
  const districtBoard = await api(supervisor, "/api/v1/board?region=" + encodeURIComponent(code));
  await first.click();
  await page.waitForURL(/\/board\?region=/);
  await page.locator("#scope-name").filter({ hasText: district }).waitFor();
  await page.waitForFunction((n) => document.getElementById("kpi-month-total").textContent.replace(/,/g, "") === String(n), districtBoard.this_month.total);
  check(true, `the district ${district}'s board opens from the region ranking with its own figures (${districtBoard.this_month.total} this month)`);
  await page.goBack();
  await page.locator("#rank-region a").first().waitFor();

  // A laptop screen.
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.waitForFunction(() => document.getElementById("chart-trend").firstElementChild.clientWidth < 700);
  await page.screenshot({ path: `${shots}/board-1366.png`, fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "nothing overflows sideways at 1366×768");

  // A handler's board covers their department only.
  const handlerContext = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  const hp = await handlerContext.newPage();
  hp.setDefaultTimeout(20000);
  await hp.goto(base + "/board");
  await uiLogin(hp, "sj");
  await hp.waitForFunction(() => Number(document.body.dataset.version || 0) >= 1);
  const handler = await apiLogin("sj");
  const mine = await api(handler, "/api/v1/board");
  check(mine.scope.kind === "department" && mine.scope.id === "D-SJ", "the handler's board is scoped to D-SJ");
  check((await hp.locator("#scope-name").textContent()).includes("市场监督管理局"), "the page names the department");
  const depts = await hp.locator("#rank-department tbody td.name").allTextContents();
  check(depts.length === 1 && depts[0] === "示范市市场监督管理局", "the department ranking shows only the handler's department");
  check(asNumber(await kpi(hp, "kpi-today-total")) === mine.today.total, `the handler's today total is D-SJ's (${mine.today.total})`);
  await hp.screenshot({ path: `${shots}/board-handler-1366.png`, fullPage: true });
} finally {
  await browser.close();
}
done("board");

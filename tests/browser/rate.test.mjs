// The citizen's rating page in a real browser at phone size (Playwright + Debian Chromium,
// headless, 360×740): open an invitation link, pick 不满意, be told a tag is required, pick one,
// submit, see the thank-you state, find the rating in the stats, and see the link is used when
// reopened; the evaluation dimensions of the link's channel (服务态度 / 办事效率 / 业务水平) are
// optional one-tap rows under the overall grade, a second tap clears one, and the graded ones
// reach the statistics with the same single submit. Run by deploy/local/test.sh: HCP_URL, HCP_RATE_LINK (/r/…), HCP_SCREENSHOTS and
// HCP_AUDITOR_TOKEN (a session that may read the statistics).
import { base, check, done, launch, shots } from "./support.mjs";

const link = process.env.HCP_RATE_LINK;
if (!link) throw new Error("HCP_RATE_LINK is required");

async function qrTotal() {
  const r = await fetch(base + "/api/v1/stats/summary?scope=channel&id=qr_code", {
    headers: { Authorization: "Bearer " + process.env.HCP_AUDITOR_TOKEN },
  });
  if (r.status !== 200) throw new Error("stats answered " + r.status);
  return (await r.json()).total;
}

async function dimensionsToday() {
  const r = await fetch(base + "/api/v1/board", { headers: { Authorization: "Bearer " + process.env.HCP_AUDITOR_TOKEN } });
  if (r.status !== 200) throw new Error("board answered " + r.status);
  const out = {};
  for (const d of (await r.json()).dimensions) out[d.code] = d.today.counts;
  return out;
}

const before = await qrTotal();
const dimsBefore = await dimensionsToday();
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 360, height: 740 }, locale: "zh-CN", isMobile: true, hasTouch: true });
  page.setDefaultTimeout(15000);
  await page.goto(base + link);
  await page.getByRole("radio", { name: "非常满意" }).waitFor();
  const names = await page.getByRole("radio").evaluateAll((rs) => rs.map((r) => r.parentElement.textContent.trim()));
  check(JSON.stringify(names) === JSON.stringify(["非常满意", "满意", "基本满意", "不满意", "非常不满意"]), "five labelled choices, 非常满意 … 非常不满意");
  // The overall grade's choice (the dimension rows below repeat the scale's words on their buttons).
  const box = await page.getByRole("group", { name: "您对本次服务满意吗?" }).getByText("非常不满意", { exact: true }).boundingBox();
  check(box && box.height >= 48 && box.width <= 360, `large touch targets that fit 360 px (${Math.round(box.height)} px high)`);
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "no horizontal scrolling at 360 px");
  await page.screenshot({ path: `${shots}/rate-form-360.png`, fullPage: true });

  // Dimension rows: one group per dimension the channel offers, five toggle buttons each.
  const groups = page.getByRole("group", { name: /服务态度|办事效率|业务水平/ });
  check(await groups.count() === 3, "three dimension rows for a window stage: 服务态度, 办事效率, 业务水平");
  const attitudeBad = page.getByRole("button", { name: "服务态度 不满意", exact: true });
  const speedGood = page.getByRole("button", { name: "办事效率 满意", exact: true });
  const skillTop = page.getByRole("button", { name: "业务水平 非常满意", exact: true });
  const tb = await attitudeBad.boundingBox();
  check(tb && tb.height >= 48, `dimension buttons are large touch targets (${Math.round(tb.height)} px high)`);
  await attitudeBad.tap();
  await speedGood.tap();
  await speedGood.tap();
  await skillTop.tap();
  check(await attitudeBad.getAttribute("aria-pressed") === "true" && await skillTop.getAttribute("aria-pressed") === "true",
    "one tap grades a dimension");
  check(await speedGood.getAttribute("aria-pressed") === "false", "a second tap clears it: every row is optional");
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "the dimension rows fit 360 px");
  await page.screenshot({ path: `${shots}/rate-dimensions-360.png`, fullPage: true });

  await page.getByRole("radio", { name: "不满意", exact: true }).check();
  await page.getByRole("button", { name: "提交评价" }).click();
  await page.getByRole("alert").filter({ hasText: "请至少选择一个原因标签" }).waitFor();
  check(true, "a bad review without a tag or text is told a tag is required");
  await page.screenshot({ path: `${shots}/rate-tag-required-360.png`, fullPage: true });

  const tags = page.getByRole("checkbox");
  check(await tags.count() > 0, "tags for a bad review are offered");
  await tags.first().check();
  await page.getByRole("button", { name: "提交评价" }).click();
  await page.getByRole("heading", { name: "感谢您的评价!" }).waitFor();
  check(true, "the thank-you state shows");
  await page.screenshot({ path: `${shots}/rate-thanks-360.png`, fullPage: true });

  let after = before;
  for (let i = 0; i < 100 && after !== before + 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await qrTotal();
  }
  check(after === before + 1, `the rating appears in the stats (qr_code ${before} → ${after})`);
  const dimsAfter = await dimensionsToday();
  const plus = (code, grade) => (dimsAfter[code] || [0, 0, 0, 0, 0])[grade - 1] - (dimsBefore[code] || [0, 0, 0, 0, 0])[grade - 1];
  const total = (m, code) => (m[code] || []).reduce((a, b) => a + b, 0);
  check(plus("service_attitude", 2) === 1 && plus("competence", 5) === 1 && total(dimsAfter, "efficiency") === total(dimsBefore, "efficiency"),
    "the graded dimensions (服务态度 不满意, 业务水平 非常满意) were counted with the one submit, the cleared one was not");

  await page.goto(base + link);
  await page.getByText("该评价链接已使用").waitFor();
  check(true, "reopening the link says it was used");
  await page.screenshot({ path: `${shots}/rate-used-360.png`, fullPage: true });

  await page.goto(base + link.slice(0, -2) + "xx");
  await page.getByText("评价链接无效").waitFor();
  check(true, "a forged link is refused");
} finally {
  await browser.close();
}
done("rate");

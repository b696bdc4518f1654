// The citizen's rating page in a real browser at phone size (Playwright + Debian Chromium,
// headless, 360×740): open an invitation link, pick 不满意, be told a tag is required, pick one,
// submit, see the thank-you state, find the rating in the stats, and see the link is used when
// reopened. Run by deploy/local/test.sh: HCP_URL, HCP_RATE_LINK (/r/…), HCP_SCREENSHOTS and
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

const before = await qrTotal();
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 360, height: 740 }, locale: "zh-CN", isMobile: true, hasTouch: true });
  page.setDefaultTimeout(15000);
  await page.goto(base + link);
  await page.getByRole("radio", { name: "非常满意" }).waitFor();
  const names = await page.getByRole("radio").evaluateAll((rs) => rs.map((r) => r.parentElement.textContent.trim()));
  check(JSON.stringify(names) === JSON.stringify(["非常满意", "满意", "基本满意", "不满意", "非常不满意"]), "five labelled choices, 非常满意 … 非常不满意");
  const box = await page.getByText("非常不满意", { exact: true }).boundingBox();
  check(box && box.height >= 48 && box.width <= 360, `large touch targets that fit 360 px (${Math.round(box.height)} px high)`);
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "no horizontal scrolling at 360 px");
  await page.screenshot({ path: `${shots}/rate-form-360.png`, fullPage: true });

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

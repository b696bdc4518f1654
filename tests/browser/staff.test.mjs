// A window staff member's own bad reviews and their appeal (我的差评), in a real browser: the staff
// member logs in at /staff, sees exactly the bad reviews attributed to them (tests/staff_appeals.rs
// shows the API gives nothing of who rated), appeals one with a reason and an evidence reference; the region's supervisor upholds
// it (API) and the page shows the rating no longer counts. A staff member who opens the console is
// sent to their own page. Run by deploy/local/test.sh against a seeded `hcp serve`:
//   HCP_URL, HCP_DEMO_PASSWORD, HCP_SCREENSHOTS, HCP_STAFF (a staff account's login).
import { api, apiLogin, base, check, done, launch, shots, uiLogin } from "./support.mjs";

const staffLogin = process.env.HCP_STAFF;
if (!staffLogin) throw new Error("HCP_STAFF is required");

const staff = await apiLogin(staffLogin);
const supervisor = await apiLogin("dc");
const me = await api(staff, "/api/v1/auth/me");
const mine = await api(staff, "/api/v1/my/bad-reviews");
check(me.role === "staff" && me.staff_id && mine.length >= 1, `${me.staff_id} has ${mine.length} bad reviews`);
const target = mine.find((r) => r.counted && !r.appeal);
check(!!target, "one of them can be appealed");
const upheldOrder = async () => (await api(supervisor, "/api/v1/work-orders?state=appeal_upheld&limit=200")).items.find((o) => o.rating_id === target.rating_id);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  page.setDefaultTimeout(15000);
  await page.goto(base + "/staff");
  await uiLogin(page, staffLogin);
  await page.locator("#reviews article").first().waitFor();
  await page.waitForFunction((n) => document.querySelectorAll("#reviews article").length === n, mine.length);
  check(await page.locator("#total").textContent() === `共 ${mine.length} 条差评`, "the page lists exactly the staff member's bad reviews");
  const card = page.locator(`#reviews article[data-rating="${target.rating_id}"]`);
  await card.getByText("对此差评提出申诉").click();
  await card.getByLabel("申诉理由").fill("当时窗口系统故障,评价人所述等待时间与本人服务无关");
  await card.getByLabel("证据引用(可选,每行一个:录像编号、文件编号或链接)").fill("监控录像 2026-12-05 10:02\n故障报修单 GZ-0093");
  await card.getByRole("button", { name: "提出申诉" }).click();
  await card.locator(".badge").filter({ hasText: "待复核" }).waitFor();
  check(await card.getByRole("button", { name: "提出申诉" }).count() === 0, "after filing, the review shows 待复核 and no second form");
  await page.screenshot({ path: `${shots}/staff-appeal-390.png`, fullPage: true });

  // The region's supervisor reviews it (复核) and upholds it.
  const pending = await api(supervisor, "/api/v1/staff-appeals?status=pending");
  const appeal = pending.find((a) => a.rating_id === target.rating_id);
  check(appeal && appeal.attachments.length === 2 && appeal.staff_id === me.staff_id, "the supervisor sees the appeal with both references");
  await api(supervisor, `/api/v1/staff-appeals/${appeal.appeal_id}/uphold`, "POST", { note: "经核实系统故障所致,申诉成立" });
  await page.reload();
  await card.locator(".badge").filter({ hasText: "申诉成立" }).waitFor();
  check((await card.innerText()).includes("不计入统计"), "the page shows the rating no longer counts");
  check((await card.innerText()).includes("经核实系统故障所致,申诉成立"), "and the review's note");
  const record = await api(supervisor, `/api/v1/ratings/${target.rating_id}`);
  check(record.counted === false, "the rating is excluded from the statistics");
  check(target.order_state === "opened" && !!(await upheldOrder()), "its order, still opened when appealed, ended as appeal_upheld");
  await page.screenshot({ path: `${shots}/staff-upheld-390.png`, fullPage: true });

  // A staff member who opens the handler console lands on their own page.
  await page.goto(base + "/console");
  await page.waitForURL(/\/staff$/);
  check(true, "the console sends a staff member to /staff");
} finally {
  await browser.close();
}
done("staff");

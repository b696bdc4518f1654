// The department handler's console, in a real browser (Playwright + Debian Chromium, headless):
// a handler logs in, sees exactly their department's open orders sorted by deadline, claims the
// most urgent one, records contact, verification (属实) and rectification, and the audit log
// shows each step. Run by deploy/local/test.sh against a seeded `hcp serve`:
//   HCP_URL, HCP_DEMO_PASSWORD, HCP_SCREENSHOTS (directory), optional HCP_HANDLER / HCP_HANDLER_DEPT.
import { api, apiLogin, base, check, done, launch, shots, uiLogin } from "./support.mjs";

const handler = process.env.HCP_HANDLER || "sj";
const dept = process.env.HCP_HANDLER_DEPT || "D-SJ";

// What the handler must see, computed from the admin's unrestricted view.
const admin = await apiLogin("admin");
const all = await api(admin, "/api/v1/work-orders?open=true&limit=500");
const mine = await api(admin, `/api/v1/work-orders?open=true&limit=500&sort=deadline&department_id=${dept}`);
const others = all.items.filter((o) => o.department_id !== dept).length;
check(mine.items.length >= 2 && others > 0, `seeded orders: ${mine.items.length} for ${dept}, ${others} for other departments`);
const expected = mine.items.map((o) => String(o.order_no));

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 }, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  page.setDefaultTimeout(15000);
  await page.goto(base + "/console");
  await uiLogin(page, handler, "wrong-password");
  await page.getByRole("alert").filter({ hasText: "账号或密码错误" }).waitFor();
  check(true, "a wrong password is refused with a message");
  await uiLogin(page, handler);
  await page.locator("#orders tr").first().waitFor();
  await page.waitForFunction((n) => document.querySelectorAll("#orders tr").length === n, expected.length);

  const shown = await page.locator("#orders tr td:first-child").allTextContents();
  check(JSON.stringify(shown) === JSON.stringify(expected), `the list is exactly ${dept}'s ${expected.length} open orders, soonest deadline first`);
  check(await page.locator("#total").textContent() === `共 ${expected.length} 张`, "the total matches");
  await page.screenshot({ path: `${shots}/console-list-1366.png`, fullPage: true });

  const first = mine.items[0];
  await page.locator("#orders tr").first().click();
  await page.locator("#detail-title").filter({ hasText: `工单 ${first.order_no}` }).waitFor();
  const steps = [
    ["签收", "已签收"],
    ["联系评价人", "已联系"],
    ["核实属实:窗口服务", "已核实"],
    ["整改", "已整改"],
  ];
  for (const [i, [button, state]] of steps.entries()) {
    if (button === "整改") await page.getByLabel("办理说明(申诉、复核时必填)").fill("已对窗口工作人员进行批评教育并整改");
    await page.getByRole("button", { name: button, exact: true }).click();
    await page.locator("#message").filter({ hasText: `当前状态:${state}` }).waitFor();
    await page.waitForFunction((n) => document.querySelectorAll("#log tr").length === n, i + 2);
  }
  const log = await page.locator("#log tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  check(JSON.stringify(log.map((r) => r[2])) === JSON.stringify(["开单", "签收", "联系评价人", "核实", "整改"]), "the audit log shows each step in order");
  check(log.slice(1).every((r) => r[1] === handler) && log[0][1] === "system:aggregator", "each step names who took it");
  check(log[4][4] === "已对窗口工作人员进行批评教育并整改", "the rectification note is logged");
  await page.screenshot({ path: `${shots}/console-detail-1366.png`, fullPage: true });

  // The server agrees: the order is rectified and its log has the same steps.
  const detail = await api(admin, `/api/v1/work-orders/${first.order_id}`);
  check(detail.order.state === "rectified" && detail.order.founded === true && detail.order.cause === "conduct", "the order is stored as rectified (属实, 窗口服务)");
  check(JSON.stringify(detail.log.map((l) => l.action)) === JSON.stringify(["open", "claim", "contact", "verify", "rectify"]), "the stored audit log matches");

  // Narrow screens still work (a handler on a laptop or tablet).
  await page.setViewportSize({ width: 900, height: 900 });
  await page.screenshot({ path: `${shots}/console-detail-900.png`, fullPage: true });

  // The region's supervisor records 教育 on the founded conduct order; 流程论证 is not offered.
  const sup = await browser.newPage({ viewport: { width: 1366, height: 768 }, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  sup.setDefaultTimeout(15000);
  await sup.goto(base + "/console");
  await uiLogin(sup, "dc");
  await sup.locator("#orders tr").first().waitFor();
  await sup.locator("#f-state").selectOption("rectified");
  await sup.getByRole("button", { name: "筛选", exact: true }).click();
  await sup.locator("#orders tr td:first-child", { hasText: new RegExp(`^${first.order_no}$`) }).click();
  await sup.locator("#detail-title").filter({ hasText: `工单 ${first.order_no}` }).waitFor();
  const offered = await sup.locator("#actions button").allTextContents();
  check(["记录教育", "记录约谈", "记录问责"].every((b) => offered.includes(b)) && !offered.includes("记录流程论证"), `the supervisor is offered the conduct measures only: ${offered.join("、")}`);
  await sup.getByLabel("办理说明(申诉、复核时必填)").fill("窗口负责人已对该工作人员进行教育");
  await sup.getByRole("button", { name: "记录教育", exact: true }).click();
  await sup.locator("#message").filter({ hasText: "已记录教育" }).waitFor();
  await sup.locator("#facts").filter({ hasText: "教育:窗口负责人已对该工作人员进行教育(dc" }).waitFor();
  const after = await api(admin, `/api/v1/work-orders/${first.order_id}`);
  check(after.accountability.length === 1 && after.accountability[0].kind === "education" && after.accountability[0].actor === "dc" && after.accountability[0].cause === "conduct",
    "the measure is stored with who recorded it and the cause it answers");
  check(after.log.at(-1).action === "accountability:education" && after.order.state === "rectified", "the audit log has the measure and the state is unchanged");
  await sup.screenshot({ path: `${shots}/console-accountability-1366.png`, fullPage: true });
} finally {
  await browser.close();
}
done("console");

// What the browser tests share: the environment, a counting `check`, the API client and the
// Chromium launch. Each test is its own `node` process run by deploy/local/test.sh.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

/** The server under test (HCP_URL, required). */
export const base = process.env.HCP_URL;
if (!base) throw new Error("HCP_URL is required");
/** The seeded demo accounts' password. */
export const password = process.env.HCP_DEMO_PASSWORD || "hcp-demo-2026";
/** Where screenshots go (created). */
export const shots = process.env.HCP_SCREENSHOTS || "tests/browser/screenshots";
mkdirSync(shots, { recursive: true });

let passed = 0;
/** Fails the test (throws) unless `cond`; otherwise counts and prints the check. */
export function check(cond, what) {
  if (!cond) throw new Error("FAILED: " + what);
  passed += 1;
  console.log("ok - " + what);
}
/** Prints the closing line of a test that got to its end. */
export function done(name) {
  console.log(`${name}: ${passed} passed, 0 failed`);
}

/** Logs a demo account in through the API and returns its bearer token. */
export async function apiLogin(username) {
  const r = await fetch(base + "/api/v1/auth/login", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password }),
  });
  if (r.status !== 200) throw new Error(`login ${username}: ${r.status}`);
  return (await r.json()).token;
}

/** Logs `username` in through a page's login form (账号, 密码, 登录). */
export async function uiLogin(page, username, pass = password) {
  await page.getByLabel("账号").fill(username);
  await page.getByLabel("密码").fill(pass);
  await page.getByRole("button", { name: "登录" }).click();
}

/** Calls the API with a bearer token; anything but 200 throws. */
export async function api(token, path, method = "GET", body) {
  const r = await fetch(base + path, {
    method, headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Debian's Chromium, headless. */
export function launch() {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}

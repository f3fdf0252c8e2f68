// The Activity page as an admin uses it, in headless Chromium against the running local stack
// (`infra/run.sh`): enter the token, see a request appear and reach succeeded, open its detail,
// and retry a job the target app failed; then find drift: change an account behind idlcm's back,
// run "Resync: report" (the difference and the unmanaged account shown) and "Resync: correct"
// (the app restored). Writes screenshots: <screenshot> and resync.png beside it.
// Usage: node activity.mjs <state dir holding local.json> <screenshot path>
import { readFileSync } from "node:fs";
import { check, finish, launch, openConsole } from "./harness.mjs";

const [stateDir, screenshot] = process.argv.slice(2);
const local = JSON.parse(readFileSync(`${stateDir}/local.json`, "utf8"));

async function scim(method, path, body) {
  const resp = await fetch(local.demo.scim_base_url + path, {
    method,
    headers: { "Authorization": `Bearer ${local.demo.scim_token}`, "Content-Type": "application/scim+json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (resp.status >= 300) throw new Error(`${method} ${path}: ${resp.status} ${await resp.text()}`);
  return resp.status === 204 ? null : resp.json();
}
const user = (name) => ({
  schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: name, active: true,
  name: { givenName: "Browser", familyName: "Test" }, emails: [{ value: name, primary: true }],
});

const browser = await launch();
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const stamp = Date.now();
  await scim("POST", "/Users", user(`browser-${stamp}@example.com`));

  await check("asks for the admin token once, by label", async () => {
    await openConsole(page, local.api_url);
    await page.getByLabel("Admin token").fill(local.admin_token);
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByLabel("Integration", { exact: true }).waitFor();
  });
  const only = async (name) => { await page.getByLabel("User", { exact: true }).fill(name); await page.getByRole("button", { name: "Filter" }).click(); };
  await check("the request appears and reaches succeeded", async () => {
    await only(`browser-${stamp}@example.com`);
    const row = page.locator("tr.request", { hasText: "POST /Users" }).first();
    await row.waitFor({ timeout: 30000 });
    await row.locator(".badge.s-succeeded").waitFor({ timeout: 60000 });
  });
  await check("its detail shows the user and before -> after", async () => {
    await page.locator("tr.request", { hasText: "POST /Users" }).first().click();
    await page.locator("#jobs tr", { hasText: `browser-${stamp}@example.com` }).waitFor();
    await page.locator("#jobs ins", { hasText: "new, role" }).first().waitFor();
  });
  await check("a job failed by the app shows its error and succeeds after Retry", async () => {
    const fault = { responses: [{ status: 400, body: { error: "browser test: rejected once" } }], match: { method: "POST", path_prefix: "/api/users" } };
    const injected = await fetch(`${local.demo_app.url}/_demo/faults`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(fault) });
    if (!injected.ok) throw new Error(`fault injection: ${injected.status}`);
    await scim("POST", "/Users", user(`retry-${stamp}@example.com`));
    await only(`retry-${stamp}@example.com`);
    const row = page.locator("tr.request", { has: page.locator(".badge.s-failed") }).first();
    await row.waitFor({ timeout: 60000 });
    await row.click();
    await page.locator("#jobs td.error", { hasText: "rejected once" }).waitFor();
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.locator("#detail-title", { hasText: "succeeded" }).waitFor({ timeout: 60000 });
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  // Drift: the app's admin promotes our user and adds an account of their own.
  const app = async (method, path, body) => {
    const resp = await fetch(`${local.demo_app.url}${path}`, {
      method, headers: { "Authorization": `Bearer ${local.demo_app.api_key}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!resp.ok) throw new Error(`demo app ${method} ${path}: ${resp.status}`);
    return resp.json();
  };
  const email = `browser-${stamp}@example.com`;
  const [account] = await app("GET", `/api/users?email=${encodeURIComponent(email)}`);
  await app("PUT", `/api/users/${account.id}`, { role: "admin" });
  await app("POST", "/api/users", { email: `unmanaged-${stamp}@example.com`, given_name: "Nobody", family_name: "Manages", role: "viewer" });
  await check("Resync: report shows the difference and the unmanaged account", async () => {
    await only(email);
    await page.getByRole("button", { name: "Resync: report" }).click();
    const row = page.locator("tr.request", { hasText: "RESYNC" }).first();
    await row.locator(".badge.s-succeeded").waitFor({ timeout: 90000 });
    await row.click();
    const job = page.locator("#jobs tr", { hasText: email });
    await job.locator(".badge.s-drift").waitFor({ timeout: 30000 });
    await job.locator("del", { hasText: "admin" }).waitFor();
    await page.locator("#unmanaged-accounts tr", { hasText: `unmanaged-${stamp}@example.com` }).waitFor({ timeout: 30000 });
  });
  const resyncShot = screenshot.replace(/[^/]*$/, "resync.png");
  await page.screenshot({ path: resyncShot, fullPage: true });
  console.log(`screenshot: ${resyncShot}`);
  await check("Resync: correct brings the app back", async () => {
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Resync: correct" }).click();
    const deadline = Date.now() + 90000;
    for (;;) {
      const [now] = await app("GET", `/api/users?email=${encodeURIComponent(email)}`);
      if (now.role !== "admin") break;
      if (Date.now() > deadline) throw new Error("the app still has the role set behind idlcm's back");
      await new Promise((r) => setTimeout(r, 500));
    }
    const [still] = await app("GET", `/api/users?email=${encodeURIComponent(`unmanaged-${stamp}@example.com`)}`);
    if (!still || !still.active) throw new Error("the unmanaged account was touched");
  });
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
finish(failed);

// The console as admins and integration owners use it, in headless Chromium against the running
// local stack (`infra/run.sh`): the admin creates an integration through the form (a field the
// API refuses is shown beside it), issues a SCIM token, creates an owner; the owner signs in,
// sees only that integration, edits its role mapping, imports the role catalog from the app,
// runs "Test connection", and finds the change in the audit trail. Writes a screenshot of each screen: console-*.png in <dir>.
// Usage: node console.mjs <state dir holding local.json> <screenshot dir>
import { readFileSync } from "node:fs";
import { check, finish, launch, openConsole } from "./harness.mjs";

const [stateDir, shots] = process.argv.slice(2);
const local = JSON.parse(readFileSync(`${stateDir}/local.json`, "utf8"));
const demo = JSON.parse(readFileSync(new URL("../../infra/demo-integration.json", import.meta.url), "utf8"));
const stamp = Date.now();
const appName = `Console app ${stamp}`;
const ownerName = `App team ${stamp}`;

const browser = await launch();
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(local.api_url).origin });
  const page = await context.newPage();
  const shot = async (name) => { const path = `${shots}/console-${name}.png`; await page.screenshot({ path, fullPage: true }); console.log(`screenshot: ${path}`); };
  const signIn = async (token, who) => {
    await openConsole(page, local.api_url);
    await page.getByLabel("Admin token or owner token").fill(token);
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator("#who", { hasText: who }).waitFor({ timeout: 30000 });
  };

  await check("the admin signs in and the page says what an admin may do", async () => {
    await signIn(local.admin_token, "Signed in as admin");
    await page.getByRole("button", { name: "Owners" }).waitFor();
  });

  await check("a field the API refuses is shown beside it", async () => {
    await page.getByRole("button", { name: "Integrations" }).click();
    await page.getByRole("button", { name: "New integration" }).click();
    await page.getByLabel("Name", { exact: true }).fill(appName);
    await page.getByLabel("Connector type").selectOption("http");
    await page.getByLabel("App URL").fill("ftp://app.invalid");
    await page.getByRole("button", { name: "Save" }).click();
    const error = page.locator(".field", { has: page.getByLabel("App URL") }).locator(".error");
    await error.waitFor({ timeout: 15000 });
    if (!(await error.textContent()).includes("connector.base_url")) throw new Error(`error shown: ${await error.textContent()}`);
  });

  await check("the admin creates an integration through the form and gets its SCIM token once", async () => {
    const { type, base_url, secret, ...more } = demo.connector;
    await page.getByLabel("App URL").fill(local.demo_app.url);
    await page.getByLabel("Connector secret").fill(local.demo_app.api_key);
    await page.getByLabel("More connector settings (JSON)").fill(JSON.stringify(more, null, 2));
    await page.getByLabel("Role attribute").fill("roles");
    await page.getByLabel("Default role").fill("viewer");
    await page.getByRole("button", { name: "Add mapping" }).click();
    await page.getByLabel("Group 1").fill("Console Admins");
    await page.getByLabel("Role 1").fill("admin");
    await page.getByLabel("Priority 1").fill("20");
    await page.getByLabel("Mapped attributes").fill(demo.attributes.map((a) => JSON.stringify(a)).join("\n"));
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("#token-once").waitFor({ timeout: 15000 });
    const url = await page.locator("#once-url").textContent();
    if (!/\/scim\/v2\/[0-9a-z]+$/.test(url)) throw new Error(`SCIM base URL shown: ${url}`);
    await page.getByRole("button", { name: "Copy token" }).click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    const token = await page.locator("#once-token").textContent();
    // The token shown works against the SCIM base URL shown.
    const resp = await fetch(`${url}/Users?count=1`, { headers: { Authorization: `Bearer ${token}` } });
    if (resp.status !== 200) throw new Error(`the new SCIM token answered ${resp.status}`);
    await page.locator("#integration-rows tr", { hasText: appName }).waitFor();
  });
  await shot("integration");

  await check("the admin issues a second SCIM token", async () => {
    await page.getByRole("button", { name: "Issue SCIM token" }).click();
    await page.locator("#token-rows tr button", { hasText: "Revoke" }).nth(1).waitFor({ timeout: 15000 });
  });

  let ownerToken;
  await check("the admin creates an owner of that integration and sees its token once", async () => {
    await page.getByRole("button", { name: "Owners" }).click();
    await page.getByLabel("Owner name").fill(ownerName);
    await page.getByRole("checkbox", { name: appName }).check();
    await page.getByRole("button", { name: "Create owner" }).click();
    await page.locator("#owner-once").waitFor({ timeout: 15000 });
    ownerToken = (await page.locator("#owner-token").textContent()).trim();
    await page.locator("#owner-rows tr", { hasText: ownerName }).locator("td", { hasText: appName }).waitFor();
  });
  await shot("owners");

  await check("the owner signs in and sees only its integration", async () => {
    await page.getByRole("button", { name: "Forget token" }).click();
    await signIn(ownerToken, `Signed in as owner ${ownerName}`);
    if (await page.getByRole("button", { name: "Owners" }).isVisible()) throw new Error("an owner sees the Owners tab");
    await page.getByRole("button", { name: "Integrations" }).click();
    await page.locator("#integration-rows tr", { hasText: appName }).waitFor();
    const rows = await page.locator("#integration-rows tr").count();
    if (rows !== 1) throw new Error(`the owner sees ${rows} integrations`);
    if (await page.getByRole("button", { name: "New integration" }).isVisible()) throw new Error("an owner may not create integrations");
  });

  await check("the owner edits the role mapping", async () => {
    await page.getByRole("button", { name: appName }).click();
    await page.getByLabel("Role 1").waitFor();
    if ((await page.getByLabel("Connector secret").inputValue()) !== "") throw new Error("a secret was shown");
    await page.getByLabel("Role 1").fill("editor");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("#test-result", { hasText: "Saved." }).waitFor({ timeout: 15000 });
    if ((await page.getByLabel("Role 1").inputValue()) !== "editor") throw new Error("the mapping was not saved");
  });

  await check("the owner imports the role catalog from the app", async () => {
    await page.getByRole("button", { name: "Import roles from the app" }).click();
    await page.locator("#import-result", { hasText: "Saved." }).waitFor({ timeout: 15000 });
    const catalog = JSON.parse(await page.getByLabel("Role catalog (JSON)").inputValue());
    const values = catalog.map((r) => r.value);
    if (!values.includes("admin") || !values.includes("editor")) throw new Error(`catalog: ${values}`);
  });

  await check("Test connection calls the app and shows its answer", async () => {
    await page.getByRole("button", { name: "Test connection" }).click();
    await page.locator("#test-result", { hasText: "Connection works (list_users" }).waitFor({ timeout: 15000 });
  });
  await shot("owner");

  await check("the owner finds the change in the audit trail, and only its integration's entries", async () => {
    await page.getByRole("button", { name: "Audit trail" }).click();
    const row = page.locator("#audit-rows tr[data-action='integration.update']").first();
    await row.waitFor({ timeout: 15000 });
    await row.locator("td", { hasText: `owner ${ownerName}` }).waitFor();
    await row.locator("ins", { hasText: "editor" }).waitFor();
    const others = await page.locator("#audit-rows tr", { hasNotText: appName }).count();
    if (others !== 0) throw new Error(`${others} entries of other integrations shown to the owner`);
    if ((await page.locator("#audit-rows").textContent()).includes(local.demo_app.api_key)) throw new Error("a secret in the trail");
  });
  await shot("audit");
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
finish(failed);

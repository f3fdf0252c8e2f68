// What the browser walks share: Debian's Chromium started headless with the flags this machine
// needs (no background networking: the network is closed), named checks with a summary, and
// loading the console through cargo lambda's emulator.
import { chromium } from "playwright-core";

export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const results = [];

/** Runs one named check; a failure is printed and ends the walk. */
export async function check(name, fn) {
  try { await fn(); results.push([name, true]); console.log(`ok    ${name}`); }
  catch (e) { results.push([name, false]); console.log(`FAIL  ${name}: ${e.message}`); throw e; }
}

/** Prints the summary and exits 1 when a check failed. */
export function finish(failed) {
  const passed = results.filter(([, ok]) => ok).length;
  console.log(`${passed} passed, ${results.length - passed} failed`);
  process.exit(failed ? 1 : 0);
}

/** Opens the console page. cargo lambda's emulator sometimes loses a function's answer and
 * sends its own 500 (docs/local-stack.md "Known emulator fault"): the page is loaded once more. */
export async function openConsole(page, apiUrl) {
  let resp = await page.goto(`${apiUrl}/activity`);
  if (resp && resp.status() === 500) {
    console.log("note: the emulator answered 500 for the page; loading it again");
    resp = await page.goto(`${apiUrl}/activity`);
  }
  if (!resp || !resp.ok()) throw new Error(`the console page answered ${resp && resp.status()}`);
}

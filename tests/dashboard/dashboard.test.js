// Drives the township dashboard in Debian's chromium (headless): logs in,
// checks the per-village numbers against `tally report --json`, downloads
// the Excel file, opens a task page and keeps screenshots.
// Run by tests/daemon/dash_browser.py, which starts the server and passes:
//   DASH_URL, DASH_USER, DASH_PASSWORD, DASH_REPORT (JSON file), DASH_OUT (dir)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

async function main() {
  const url = process.env.DASH_URL;
  const out = process.env.DASH_OUT;
  const report = JSON.parse(fs.readFileSync(process.env.DASH_REPORT, 'utf8'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-chromium-'));
  // A fresh profile each run (launchPersistentContext is how Playwright
  // takes --user-data-dir).
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
  });
  try {
    const page = await ctx.newPage();
    await page.goto(url + '/');
    check(page.url().endsWith('/login'), 'unauthenticated / goes to /login: ' + page.url());
    await page.fill('#user', process.env.DASH_USER);
    await page.fill('#password', 'not the password');
    await page.click('#login');
    // Throws when the error never shows (the wrong password was let in).
    await page.waitForSelector('#login-error', { timeout: 15000 }).catch(async (e) => {
      console.error(page.url(), (await page.content()).slice(0, 800));
      throw e;
    });
    check(!(await ctx.cookies()).some((c) => c.name === 'tally_session'), 'no session yet');
    await page.fill('#password', process.env.DASH_PASSWORD);
    await Promise.all([page.waitForURL(url + '/'), page.click('#login')]);
    const cookies = await ctx.cookies();
    const s = cookies.find((c) => c.name === 'tally_session');
    check(s && s.httpOnly && s.secure && s.sameSite === 'Strict', 'session cookie flags');

    // Per-village numbers as the page shows them, against the report.
    for (const g of report.by_village) {
      const key = g.village_id || g.id || g.key;
      const row = page.locator(`#by-village tr[data-key="${key}"]`);
      check(await row.count() === 1, 'row of village ' + key);
      for (const col of ['tasks', 'closed', 'submitted', 'doing', 'todo', 'overdue', 'red',
        'yellow', 'blue']) {
        const shown = (await row.locator('td.' + col).innerText()).trim();
        check(Number(shown) === g[col], `${key} ${col}: page ${shown}, report ${g[col]}`);
      }
    }
    await page.screenshot({ path: path.join(out, 'dashboard-overview.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#xlsx')]);
    const name = download.suggestedFilename();
    check(/^整改台账（汇总）\d{8}\.xlsx$/.test(name), 'Excel file name: ' + name);
    const saved = path.join(out, name);
    await download.saveAs(saved);
    const head = fs.readFileSync(saved).subarray(0, 2).toString('latin1');
    check(head === 'PK', 'Excel file is a zip: ' + JSON.stringify(head));

    const link = page.locator('#tasks a.task').first();
    await Promise.all([page.waitForURL(/\/task\/[0-9a-f]+$/), link.click()]);
    check(await page.locator('#progress').count() === 1, 'task page: progress table');
    check(await page.locator('#history tbody tr').count() >= 1, 'task page: history');
    await page.screenshot({ path: path.join(out, 'dashboard-task.png'), fullPage: true });
    console.log('ok: dashboard in chromium; screenshots and ' + name + ' in ' + out);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});

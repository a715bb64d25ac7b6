// The labextension in a real JupyterLab: a kernel cell opens the `smol_magic` comm by hand,
// sends begin_run + two inserts for its own cell id; later (after a save and a page reload)
// one generated cell is edited by hand and another cell re-sends begin_run + one insert.
//
// This script only drives the page and records what it sees; tests/test_labextension.py
// serves the notebook, starts this script and checks the report. Environment:
//   LAB_URL     http://127.0.0.1:PORT/          NOTEBOOK   notebook path under the server root
//   CHROMIUM    browser binary                  ARTIFACTS  where screenshots go
//   REPORT      where to write the JSON report  PLAYWRIGHT directory whose node_modules has playwright-core
//   OPEN_PATH   URL path that opens a notebook: lab/tree/ (JupyterLab, default) or notebooks/ (Notebook 7)
// Exits 0 after writing the report; on failure prints why, saves labext-failure.png, exits 1.

import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set (run this through tests/test_labextension.py)`);
  return process.env[name];
};
const LAB_URL = env('LAB_URL');
const NOTEBOOK = env('NOTEBOOK');
const ARTIFACTS = env('ARTIFACTS');
const REPORT = env('REPORT');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OPEN_PATH = process.env.OPEN_PATH || 'lab/tree/';
// playwright-core lives in tests/browser/node_modules, not next to this file.
const { chromium } = createRequire(join(env('PLAYWRIGHT'), 'package.json'))('playwright-core');
const STEP_TIMEOUT = 30_000;
const TOTAL_TIMEOUT = 100_000;

mkdirSync(ARTIFACTS, { recursive: true });
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);
const problems = [];
const report = { phases: {} };
let step = 'launching Chromium';

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(STEP_TIMEOUT);
// A comm id with dashes was made by a frontend, not by the kernel (uuid4().hex): with two tabs on
// one kernel, each tab hears the kernel's answers on the other tab's comms (ipywidgets' control
// comm) and logs this. That is JupyterLab's multi-client noise, not ours.
const otherClientsComm = /^Comm not found for comm id [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
page.on('console', (msg) => {
  if (msg.type() === 'error' && !otherClientsComm.test(msg.text())) {
    problems.push(`console error (while ${step}): ${msg.text()} [${msg.location().url}]`);
  }
});
page.on('pageerror', (err) => problems.push(`page error: ${err.message}\n${err.stack}`));

async function shot(name) {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  log(`screenshot ${path}`);
}

async function openNotebook(pg = page) {
  step = `opening ${NOTEBOOK}`;
  await pg.goto(new URL(`${OPEN_PATH}${NOTEBOOK}`, LAB_URL).href);
  await pg.locator('.jp-Notebook .jp-Cell').first().waitFor();
  step = 'waiting for the kernel to be idle';
  await pg.waitForFunction((path) => {
    const w = window.jupyterapp?.shell?.currentWidget;
    const kernel = w?.sessionContext?.session?.kernel;
    return w?.context?.path === path && w.sessionContext.isReady && kernel?.connectionStatus === 'connected'
      && kernel.status === 'idle';
  }, NOTEBOOK, { timeout: 60_000 });
  log('notebook open, kernel idle');
}

/** Every cell of the open notebook: model content plus what the page shows. */
const snapshot = (pg = page) => pg.evaluate(() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((w) => ({
    id: w.model.id,
    type: w.model.type,
    source: w.model.sharedModel.getSource(),
    metadata: w.model.toJSON().metadata,
    outputs: w.model.type === 'code' ? w.model.outputs.toJSON() : [],
    execution_count: w.model.type === 'code' ? w.model.executionCount : null,
    marked: w.node.classList.contains('jp-smol-magic-generated'),
    badge: getComputedStyle(w.node, '::after').content,
    outputText: w.node.querySelector('.jp-OutputArea')?.innerText ?? '',
  }));
});

const indexOf = (text) => page.evaluate((text) => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells.findIndex((w) => w.model.id === text || w.model.sharedModel.getSource().startsWith(text));
}, text);

/** Run one cell (found by id or start of its source) as a user would, and wait for it to finish. */
async function runCell(text) {
  step = `running the cell ${JSON.stringify(text)}`;
  const index = await indexOf(text);
  if (index < 0) throw new Error(`no cell ${JSON.stringify(text)} in the notebook`);
  await page.evaluate(async (i) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = i;
    await window.jupyterapp.commands.execute('notebook:run-cell');
  }, index);
  await page.waitForFunction((text) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const w = panel.content.widgets.find(
      (c) => c.model.id === text || c.model.sharedModel.getSource().startsWith(text));
    return w && w.model.executionCount !== null && panel.sessionContext.session?.kernel?.status === 'idle';
  }, text);
  log(`ran ${JSON.stringify(text)}`);
}

const waitForMarked = (n) => page.waitForFunction((n) => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells.filter((w) => w.node.classList.contains('jp-smol-magic-generated')).length === n;
}, n);

async function main() {
  await openNotebook();
  // A second tab on the same notebook and kernel: it sees the comm too, but must stay silent.
  const other = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  other.setDefaultTimeout(STEP_TIMEOUT);
  other.on('pageerror', (err) => problems.push(`page error (second tab): ${err.message}\n${err.stack}`));
  await openNotebook(other);
  await page.bringToFront();

  await runCell('agent-cell');
  step = 'waiting for the two generated cells';
  await waitForMarked(2);
  await runCell('# check 1');
  report.phases.inserted = await snapshot();
  step = 'looking at the second tab';
  await other.waitForTimeout(500);
  report.phases.otherTab = await snapshot(other);
  await other.close();
  await page.locator('.jp-Notebook').evaluate((el) => el.scrollTo(0, 0));
  await shot('labext-inserted.png');

  step = 'saving and reloading the page';
  await page.evaluate(() => window.jupyterapp.commands.execute('docmanager:save'));
  await page.waitForFunction(() => !window.jupyterapp.shell.currentWidget.context.model.dirty);
  await page.reload();
  await openNotebook();
  step = 'waiting for the marks after the reload';
  await waitForMarked(2);
  report.phases.reloaded = await snapshot();

  step = 'editing generated step 2 by hand';
  const cells = report.phases.reloaded;
  const step2 = cells.findIndex((c) => c.metadata?.smol_magic?.step === 2);
  if (step2 < 0) throw new Error('no generated cell of step 2 after the reload');
  await page.locator('.jp-Notebook .jp-Cell').nth(step2).locator('.cm-content').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\n# edited by hand');
  await page.keyboard.press('Escape');

  await runCell('# rerun');
  step = 'waiting for the old cells to go and the new one to come';
  await page.waitForFunction(() => {
    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
    const marked = cells.filter((w) => w.node.classList.contains('jp-smol-magic-generated'));
    return marked.length === 1 && marked[0].model.getMetadata('smol_magic')?.run_id === 'r2';
  });
  await runCell('# check 2');
  report.phases.rerun = await snapshot();
  step = 'selecting the new generated cell (its toolbar shows; the badge steps aside)';
  await page.evaluate(() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 1; });
  await page.locator('.jp-Notebook .jp-Cell').nth(1).locator('.jp-cell-toolbar').waitFor();
  report.toolbar = await page.evaluate(() => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[1].node;
    const box = (el) => { const r = el.getBoundingClientRect(); return { left: r.left, right: r.right, top: r.top, bottom: r.bottom }; };
    const toolbar = cell.querySelector('.jp-cell-toolbar');
    return { parentIsCell: toolbar.parentElement === cell, toolbar: box(toolbar), cell: box(cell),
      badgeRight: getComputedStyle(cell, '::after').right };
  });
  await page.locator('.jp-Notebook').evaluate((el) => el.scrollTo(0, 0));
  await shot('labext-rerun.png');
}

const deadline = new Promise((_, reject) => {
  setTimeout(() => reject(new Error(`the whole test took over ${TOTAL_TIMEOUT / 1000} s`)), TOTAL_TIMEOUT).unref();
});
let failure = null;
try {
  await Promise.race([main(), deadline]);
} catch (err) {
  failure = err;
}
report.problems = problems;
writeFileSync(REPORT, JSON.stringify(report, null, 2));
if (failure) {
  console.error(`FAILED while ${step}: ${failure.message}`);
  const path = join(ARTIFACTS, 'labext-failure.png');
  await page.screenshot({ path }).catch(() => {});
  console.error(`screenshot of the failing state: ${path}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
log('done');
await browser.close();

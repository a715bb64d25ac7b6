// The labextension in a real JupyterLab: a kernel cell opens the `smol_magic` comm by hand,
// sends begin_run + two inserts for its own cell id; later (after a save and a page reload)
// one generated cell is edited by hand and another cell re-sends begin_run + one insert.
//
// This script only drives the page and records what it sees; tests/test_labextension.py
// serves the notebook, starts this script and checks the report. Environment:
//   LAB_URL     http://127.0.0.1:PORT/          NOTEBOOK   notebook path under the server root
//   CHROMIUM    browser binary                  ARTIFACTS  where screenshots go
//   REPORT      where to write the JSON report
//   OPEN_PATH   URL path that opens a notebook: lab/tree/ (JupyterLab, default) or notebooks/ (Notebook 7)
// Exits 0 after writing the report; on failure prints why, saves labext-failure.png, exits 1.

import { writeFileSync } from 'node:fs';
// The shared browser helpers; they bring playwright-core from tests/browser/node_modules.
import {
  collectErrors, finish, launch, log, newPage, openNotebook as open, saveNotebook, scriptEnv, setStep, snapshot,
  typeAtEnd,
} from '../../tests/browser/lib.mjs';

const { LAB_URL, NOTEBOOK, ARTIFACTS, REPORT } = scriptEnv('tests/test_labextension.py', 'REPORT');
const OPEN_PATH = process.env.OPEN_PATH || 'lab/tree/';
const TOTAL_TIMEOUT = 100_000;

const problems = [];
const report = { phases: {} };
const { browser, page, shot } = await launch(ARTIFACTS, { fullPage: true });
// A comm id with dashes was made by a frontend, not by the kernel (uuid4().hex): with two tabs on
// one kernel, each tab hears the kernel's answers on the other tab's comms (ipywidgets' control
// comm) and logs this. That is JupyterLab's multi-client noise, not ours.
const otherClientsComm = /^Comm not found for comm id [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
collectErrors(page, problems, { ignore: otherClientsComm });

const openNotebook = (pg = page) => open(pg, LAB_URL, NOTEBOOK, OPEN_PATH);

const indexOf = (text) => page.evaluate((text) => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells.findIndex((w) => w.model.id === text || w.model.sharedModel.getSource().startsWith(text));
}, text);

/** Run one cell (found by id or start of its source) as a user would, and wait for it to finish. */
async function runCell(text) {
  setStep(`running the cell ${JSON.stringify(text)}`);
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
  const other = await newPage(browser);
  collectErrors(other, problems, { consoleErrors: false, tab: 'second tab' });
  await openNotebook(other);
  await page.bringToFront();

  await runCell('agent-cell');
  setStep('waiting for the two generated cells');
  await waitForMarked(2);
  await runCell('# check 1');
  report.phases.inserted = await snapshot(page);
  setStep('looking at the second tab');
  await other.waitForTimeout(500);
  report.phases.otherTab = await snapshot(other);
  await other.close();
  await page.locator('.jp-Notebook').evaluate((el) => el.scrollTo(0, 0));
  await shot('labext-inserted.png');

  setStep('saving and reloading the page');
  await saveNotebook(page);
  await page.reload();
  await openNotebook();
  setStep('waiting for the marks after the reload');
  await waitForMarked(2);
  report.phases.reloaded = await snapshot(page);

  setStep('editing generated step 2 by hand');
  const cells = report.phases.reloaded;
  const step2 = cells.findIndex((c) => c.metadata?.smol_magic?.step === 2);
  if (step2 < 0) throw new Error('no generated cell of step 2 after the reload');
  await typeAtEnd(page, step2, '# edited by hand');

  await runCell('# rerun');
  setStep('waiting for the old cells to go and the new one to come');
  await page.waitForFunction(() => {
    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
    const marked = cells.filter((w) => w.node.classList.contains('jp-smol-magic-generated'));
    return marked.length === 1 && marked[0].model.getMetadata('smol_magic')?.run_id === 'r2';
  });
  await runCell('# check 2');
  report.phases.rerun = await snapshot(page);
  setStep('selecting the new generated cell (its toolbar shows; the badge steps aside)');
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

await finish(main, {
  browser, page, artifacts: ARTIFACTS, totalTimeout: TOTAL_TIMEOUT, failureShot: 'labext-failure.png',
  record: () => {
    report.problems = problems;
    writeFileSync(REPORT, JSON.stringify(report, null, 2));
  },
});

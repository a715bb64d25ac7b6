// The agent's actions as real notebook cells, end to end in a real JupyterLab: Run All on a
// notebook whose %%agent cell (a ScriptedModel, --approve never) takes three steps; the kernel
// sends each action over the smol_magic comm and the labextension puts it below the agent cell.
// Then one generated cell is edited by hand and the agent cell is run again (a second run of the
// same model), then the user's cell after it.
//
// This script drives the page and records what it sees; tests/test_cells_browser.py serves the
// notebook, starts this script and checks the report. Environment:
//   LAB_URL    http://127.0.0.1:PORT/        NOTEBOOK  notebook path under the server root
//   CHROMIUM   browser binary                ARTIFACTS where screenshots go
//   REPORT     where to write the JSON report
//   EXPECT     JSON: agentCell, userCell (cell ids), run1User / run2User (what the user cell prints
//              after each run), editNote (the line typed into generated step 1)
// Exits 0 after writing the report; on failure prints why, saves cells-failure.png, exits 1
// (the report is written either way, with what was seen so far).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  STEP_TIMEOUT, collectErrors, elapsed, finish, launch, log, openNotebook, saveNotebook, scriptEnv, setStep,
  runCellAt, snapshot as snapshotOf, typeAtEnd,
} from './lib.mjs';

const {
  LAB_URL, NOTEBOOK, ARTIFACTS, REPORT, EXPECT: expected,
} = scriptEnv('tests/test_cells_browser.py', 'REPORT', 'EXPECT');
const EXPECT = JSON.parse(expected);
const TOTAL_TIMEOUT = 80_000; // ms for the whole script, browser start to done

const report = { phases: {}, timings: {}, console: [] };
const { browser, page, shot } = await launch(ARTIFACTS);
// Every console error and uncaught page error, with where it came from; the test judges them.
collectErrors(page, report.console);
const snapshot = () => snapshotOf(page);

const kernelIdle = () => page.evaluate(() => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
  return kernel?.status === 'idle';
});

/** Index of the cell with this id (what the page shows now; cells move as the agent adds some). */
const indexOf = (id) => page.evaluate((id) => window.jupyterapp.shell.currentWidget.content.widgets
  .findIndex((w) => w.model.id === id), id);

const countOf = (id) => page.evaluate((id) => window.jupyterapp.shell.currentWidget.content.widgets
  .find((w) => w.model.id === id)?.model.executionCount ?? null, id);

/** Wait until the cell has run (a new execution count), shows `text`, and the kernel is idle. */
async function waitForCell(id, text, before = null) {
  try {
    await page.waitForFunction(({ id, text, before }) => {
      const panel = window.jupyterapp.shell.currentWidget;
      const w = panel.content.widgets.find((c) => c.model.id === id);
      if (!w || w.model.executionCount === null || w.model.executionCount === before) return false;
      const shown = (w.node.querySelector('.jp-OutputArea')?.innerText ?? '').replace(/\u00a0/g, ' ');
      return shown.includes(text) && panel.sessionContext.session?.kernel?.status === 'idle';
    }, { id, text, before });
  } catch (err) {
    const cells = await snapshot().catch(() => []);
    const cell = cells.find((c) => c.id === id);
    throw new Error(`the cell ${id} did not show ${JSON.stringify(text)} within ${STEP_TIMEOUT / 1000} s; `
      + `it shows ${JSON.stringify(cell?.outputText ?? '(no such cell)')}, prompt ${cell?.prompt}; cells now: `
      + JSON.stringify(cells.map((c) => c.source.split('\n')[0])));
  }
}

/** Run one cell as a user would (select it, Shift+Enter's command without moving on). */
async function runCell(id) {
  const index = await indexOf(id);
  if (index < 0) throw new Error(`no cell ${id} in the notebook`);
  await runCellAt(page, index);
}

/**
 * Scroll the notebook so that the first generated cell is near the top, under the end of the
 * agent cell's trace: the screenshot shows the final answer, the generated cells and the user's cell.
 */
async function scrollToGenerated() {
  await page.evaluate(() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const w = panel.content.widgets.find((c) => c.node.classList.contains('jp-smol-magic-generated'));
    if (!w) return;
    w.node.scrollIntoView({ block: 'start' });
    let scroller = w.node.parentElement;
    while (scroller && scroller.scrollHeight <= scroller.clientHeight) scroller = scroller.parentElement;
    if (scroller) scroller.scrollTop -= 120;
  });
  await page.waitForTimeout(300); // let the windowed notebook lay out what came into view
}

async function main() {
  await openNotebook(page, LAB_URL, NOTEBOOK);
  // More room for the notebook in the screenshots.
  await page.evaluate(() => window.jupyterapp.shell.collapseLeft());
  report.phases.opened = await snapshot();

  setStep('running all cells');
  let t0 = Date.now();
  // Not awaited: the command's promise ends only when every cell has run.
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); });
  setStep("waiting for the user's cell after the agent cell to print");
  await waitForCell(EXPECT.userCell, EXPECT.run1User);
  report.timings.runAll = (Date.now() - t0) / 1000;
  await page.waitForTimeout(300); // let anything late (a stray insert, a late mark) land before we look
  report.phases.inserted = await snapshot();
  log(`run all done in ${report.timings.runAll} s`);
  await scrollToGenerated();
  await shot('cells-inserted.png');

  setStep('saving after the first run');
  await saveNotebook(page);

  setStep('editing generated step 1 by hand');
  const first = report.phases.inserted.findIndex((c) => c.metadata?.smol_magic?.step === 1);
  if (first < 0) throw new Error('no generated cell of step 1 after the first run');
  await typeAtEnd(page, first, EXPECT.editNote);
  report.phases.edited = await snapshot();

  setStep('running the agent cell again');
  t0 = Date.now();
  const before = await countOf(EXPECT.agentCell);
  await runCell(EXPECT.agentCell);
  setStep('waiting for the second run to replace the generated cells');
  try {
    await page.waitForFunction(({ id, before }) => {
      const panel = window.jupyterapp.shell.currentWidget;
      const cells = panel.content.widgets;
      const agent = cells.find((w) => w.model.id === id);
      const marked = cells.filter((w) => w.node.classList.contains('jp-smol-magic-generated'));
      return agent && agent.model.executionCount !== null && agent.model.executionCount !== before
        && panel.sessionContext.session?.kernel?.status === 'idle'
        && marked.length === 3 && marked.every((w) => w.model.getMetadata('smol_magic')?.run_id === 'run-2');
    }, { id: EXPECT.agentCell, before });
  } catch (err) {
    report.phases.rerunTimeout = await snapshot().catch(() => []);
    throw new Error('after the second run there are not exactly 3 marked cells of run-2 (see the report)');
  }
  report.timings.rerun = (Date.now() - t0) / 1000;
  log(`second run done in ${report.timings.rerun} s`);

  setStep("running the user's cell again");
  const userBefore = await countOf(EXPECT.userCell);
  await runCell(EXPECT.userCell);
  await waitForCell(EXPECT.userCell, EXPECT.run2User, userBefore);
  await page.waitForTimeout(300);
  report.phases.rerun = await snapshot();
  await scrollToGenerated();
  await shot('cells-rerun.png');

  setStep('saving after the second run');
  await saveNotebook(page);
  report.kernelIdleAtEnd = await kernelIdle();
}

await finish(main, {
  browser, page, artifacts: ARTIFACTS, totalTimeout: TOTAL_TIMEOUT, failureShot: 'cells-failure.png',
  record: () => { // the report is written either way, with what was seen so far
    report.seconds = elapsed();
    writeFileSync(REPORT, JSON.stringify(report, null, 2));
    writeFileSync(join(ARTIFACTS, 'cells-console.log'), report.console.map((p) => `${p}\n`).join(''));
  },
});

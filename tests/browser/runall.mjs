// Browser half of tests/test_runall_browser.py: Run All three times, then Restart & Run All, on a
// notebook with a %%agent cell followed by user cells; then a generated `final_answer(...)` cell run
// by hand; then a `smol-magic-edit` textarea upgraded to a CodeMirror editor, typed into.
//
// Environment (set by the pytest file): LAB_URL, NOTEBOOK, ARTIFACTS, REPORT, EXPECT (JSON: agentCell,
// userCells, lastUser (what the last user cell prints), editCell, editValueCell).
// Every execute_request the page sends (with its cell id) and every iopub message are recorded, so
// the test can tell whether a removed cell's queued request produced any output.

import { writeFileSync } from 'node:fs';
import {
  STEP_TIMEOUT, collectErrors, elapsed, finish, launch, log, openNotebook, scriptEnv, setStep,
  runCellAt, snapshot as snapshotOf,
} from './lib.mjs';

const { LAB_URL, NOTEBOOK, ARTIFACTS, REPORT, EXPECT: expected } = scriptEnv('tests/test_runall_browser.py',
  'REPORT', 'EXPECT');
const EXPECT = JSON.parse(expected);
const report = { phases: {}, console: [], requests: [], outputsByRequest: {}, replies: {} };
const { browser, page, shot } = await launch(ARTIFACTS);
collectErrors(page, report.console);
const snapshot = () => snapshotOf(page);

/** Record what goes to and comes from the kernel: requests (msg_id -> cell id), outputs and replies. */
async function recordKernelTraffic() {
  await page.exposeFunction('smolRecord', (kind, item) => {
    if (kind === 'request') report.requests.push(item);
    else if (kind === 'output') (report.outputsByRequest[item.parent] ??= []).push(item.type);
    else if (kind === 'reply') report.replies[item.parent] = item.status;
  });
  await page.evaluate(() => {
    const session = window.jupyterapp.shell.currentWidget.sessionContext;
    const watch = (kernel) => {
      if (!kernel || kernel.smolWatched) return;
      kernel.smolWatched = true;
      kernel.anyMessage.connect((_, { msg, direction }) => {
        const parent = msg.parent_header?.msg_id;
        if (direction === 'send' && msg.header.msg_type === 'execute_request') {
          window.smolRecord('request', { id: msg.header.msg_id, cellId: msg.metadata?.cellId ?? null,
            code: msg.content.code, phase: window.smolPhase });
        } else if (direction === 'recv' && ['stream', 'error', 'execute_result', 'display_data']
          .includes(msg.header.msg_type) && parent) {
          window.smolRecord('output', { parent, type: msg.header.msg_type });
        } else if (direction === 'recv' && msg.header.msg_type === 'execute_reply' && parent) {
          window.smolRecord('reply', { parent, status: msg.content.status });
        }
      });
    };
    watch(session.session?.kernel);
    session.kernelChanged.connect((_, change) => watch(change.newValue));
  });
}

const setPhase = (name) => page.evaluate((name) => { window.smolPhase = name; }, name);

/** Wait until every user cell ran after `since` (execution counts) and the last one shows its text. */
async function waitForUserCells(before) {
  try {
    await page.waitForFunction(({ ids, before, text }) => {
      const panel = window.jupyterapp.shell.currentWidget;
      const cells = panel.content.widgets;
      const ran = ids.every((id) => {
        const w = cells.find((c) => c.model.id === id);
        return w && w.model.executionCount !== null && w.model.executionCount !== before[id];
      });
      const last = cells.find((c) => c.model.id === ids[ids.length - 1]);
      const shown = (last?.node.querySelector('.jp-OutputArea')?.innerText ?? '').replace(/\u00a0/g, ' ');
      return ran && shown.includes(text) && panel.sessionContext.session?.kernel?.status === 'idle';
    }, { ids: EXPECT.userCells, before, text: EXPECT.lastUser }, { timeout: 60_000 });
  } catch (err) {
    report.phases.timeout = await snapshot().catch(() => []);
    throw new Error('the user cells after the agent cell did not all run (see the report phase "timeout")');
  }
}

const counts = () => page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id,
  window.jupyterapp.shell.currentWidget.content.widgets.find((c) => c.model.id === id)?.model.executionCount
  ?? null])), EXPECT.userCells);

async function runAll(phase) {
  setStep(phase);
  await setPhase(phase);
  const before = await counts();
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); });
  await waitForUserCells(before);
  await page.waitForTimeout(500); // anything late (a stray insert, a late mark) lands before we look
  report.phases[phase] = await snapshot();
  log(`${phase} done`);
}

async function main() {
  await openNotebook(page, LAB_URL, NOTEBOOK);
  await page.evaluate(() => window.jupyterapp.shell.collapseLeft());
  await recordKernelTraffic();
  report.phases.opened = await snapshot();

  for (const phase of ['runAll1', 'runAll2', 'runAll3']) await runAll(phase);
  await shot('runall-3.png');

  setStep('restart and run all');
  await setPhase('restartRunAll');
  const before = await counts();
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); });
  const accept = page.locator('.jp-Dialog .jp-mod-accept');
  await accept.waitFor();
  await accept.click();
  await waitForUserCells(Object.fromEntries(Object.keys(before).map((k) => [k, -1])));
  await page.waitForTimeout(500);
  report.phases.restartRunAll = await snapshot();
  log('restart and run all done');

  setStep('running the generated final_answer cell by hand');
  await setPhase('byHand');
  const index = report.phases.restartRunAll.findIndex((c) => c.metadata?.smol_magic
    && c.source.startsWith('final_answer('));
  if (index < 0) throw new Error('no generated final_answer cell after Restart & Run All');
  const handId = report.phases.restartRunAll[index].id;
  await runCellAt(page, index);
  await page.waitForFunction((id) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const w = panel.content.widgets.find((c) => c.model.id === id);
    return w && w.model.executionCount !== null && panel.sessionContext.session?.kernel?.status === 'idle';
  }, handId);
  await page.waitForTimeout(300);
  report.phases.byHand = await snapshot();
  report.byHandCell = handId;
  await shot('runall-by-hand.png');

  // The badge: where it is drawn, against every code line of generated cells; light theme, then dark.
  const badges = () => page.evaluate(() => {
    const out = [];
    for (const w of window.jupyterapp.shell.currentWidget.content.widgets) {
      if (!w.node.classList.contains('jp-smol-magic-generated')) continue;
      const style = getComputedStyle(w.node, '::after');
      const cell = w.node.getBoundingClientRect();
      const top = cell.top + parseFloat(style.top);
      const left = cell.left + parseFloat(style.left);
      const box = { top, left, bottom: top + parseFloat(style.height), right: left + parseFloat(style.width) };
      const lines = [...w.node.querySelectorAll('.cm-line')].map((l) => {
        const r = l.getBoundingClientRect();
        return { top: r.top, bottom: r.bottom, left: r.left, right: r.right };
      });
      out.push({ id: w.model.id, position: style.position, box, lines, color: style.color,
        background: style.backgroundColor });
    }
    return out;
  });
  report.badges = await badges();
  setStep('switching to JupyterLab Dark');
  await page.evaluate(() => window.jupyterapp.commands.execute('apputils:change-theme', { theme: 'JupyterLab Dark' }));
  await page.waitForFunction(() => document.body.dataset.jpThemeLight === 'false'
    && document.body.dataset.jpThemeName === 'JupyterLab Dark');
  await page.waitForTimeout(500);
  report.badgesDark = await badges();
  await shot('runall-dark.png');

  setStep('the edit textarea becomes a CodeMirror editor');
  await setPhase('edit');
  // The edit cell ran in Restart & Run All: its textarea should now be an editor.
  const editor = page.locator(`.jp-Cell[data-smol-cell="${EXPECT.editCell}"] .jp-smol-magic-editor .cm-content`);
  await page.evaluate((id) => {
    const w = window.jupyterapp.shell.currentWidget.content.widgets.find((c) => c.model.id === id);
    w.node.dataset.smolCell = id;
    w.node.scrollIntoView();
  }, EXPECT.editCell);
  await editor.waitFor();
  report.editor = await page.evaluate((id) => {
    const host = document.querySelector(`.jp-Cell[data-smol-cell="${id}"] .jp-smol-magic-editor`);
    const area = host.parentElement.querySelector('textarea');
    return {
      textareaHidden: getComputedStyle(area).display === 'none',
      text: host.querySelector('.cm-content').innerText,
      // highlighted tokens: CodeMirror wraps keywords, numbers... in spans with classes
      tokenSpans: host.querySelectorAll('.cm-line span[class]').length,
    };
  }, EXPECT.editCell);
  await editor.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\nsquare = n * n');
  await page.keyboard.press('Escape');
  await shot('runall-editor.png');
  // The kernel's widget now holds the typed text: a cell prints it.
  await page.evaluate((id) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = panel.content.widgets.findIndex((c) => c.model.id === id);
    panel.content.mode = 'command';
    window.jupyterapp.commands.execute('notebook:run-cell');
  }, EXPECT.editValueCell);
  await page.waitForFunction((id) => {
    const w = window.jupyterapp.shell.currentWidget.content.widgets.find((c) => c.model.id === id);
    return (w?.node.querySelector('.jp-OutputArea')?.innerText ?? '').includes('square');
  }, EXPECT.editValueCell, { timeout: STEP_TIMEOUT });
  report.phases.edit = await snapshot();
}

await finish(main, {
  browser, page, artifacts: ARTIFACTS, totalTimeout: 170_000, failureShot: 'runall-failure.png',
  record: () => { report.seconds = elapsed(); writeFileSync(REPORT, JSON.stringify(report, null, 2)); },
});

// The live trace in a real JupyterLab: run all cells, click the approval card's Run for
// both steps, then check the static trace that replaces the widget and the cell after it.
//
// Started by tests/test_browser.py, which serves the notebook. Environment:
//   LAB_URL    http://127.0.0.1:PORT/     NOTEBOOK   path of the notebook under the server root
//   CHROMIUM   browser binary             ARTIFACTS  where screenshots go
//   EXPECT     JSON: step1Code, step1Output, step2Code, finalAnswer, afterCell (code of the
//              cell after the agent's) and after (what it prints)
// Exits 0 on success; on failure prints why, saves trace-failure.png and exits 1.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  STEP_TIMEOUT, collectErrors, finish, launch, log, openNotebook, scriptEnv, setStep,
} from './lib.mjs';

const { LAB_URL, NOTEBOOK, ARTIFACTS, EXPECT: expected } = scriptEnv('tests/test_browser.py', 'EXPECT');
const EXPECT = JSON.parse(expected);
const TOTAL_TIMEOUT = 90_000; // ms for the whole test, browser start to PASS

const problems = []; // console errors and uncaught page errors: any of them fails the test
const { browser, page, shot } = await launch(ARTIFACTS);
collectErrors(page, problems);

async function waitForText(locator, text, what) {
  try {
    await locator.filter({ hasText: text }).first().waitFor();
  } catch (err) {
    const shown = await locator.allInnerTexts().catch(() => []);
    throw new Error(`${what} does not show ${JSON.stringify(text)} after ${STEP_TIMEOUT / 1000} s; `
      + `it shows: ${shown.length ? shown.join('\n') : '(nothing)'}`);
  }
}

async function expectText(locator, text, what) {
  const got = (await locator.innerText()).replace(/\u00a0/g, ' ');
  if (!got.includes(text)) throw new Error(`${what} does not show ${JSON.stringify(text)}; it shows:\n${got}`);
}

// The live widget (an ipywidgets VBox with our class) and the static HTML trace that replaces it.
const live = page.locator('.jupyter-widgets.smol-magic-trace');
const runButton = live.locator('button').filter({ hasText: /^\s*Run\s*$/ });
const staticTrace = page.locator('.jp-OutputArea-output .smol-magic-trace:not(.jupyter-widgets)');
const cardTitle = (n) => live.locator('.jupyter-widget-Collapse-header').nth(n - 1);
const cardContents = (n) => live.locator('.jupyter-widget-Collapse-contents').nth(n - 1);
// By its code, not its index: cells may be added to the notebook while it runs.
const cellWith = (code) => page.locator('.jp-Notebook .jp-Cell')
  .filter({ has: page.locator('.jp-InputArea', { hasText: code }) });

async function approve(n) {
  setStep(`waiting for the Run button of step ${n}`);
  await runButton.waitFor({ state: 'visible' });
  await expectText(cardTitle(n), `Step ${n} · waiting for you`, `the card of step ${n}`);
  await expectText(live.locator('.smol-status'), 'waiting for you', 'the trace header while waiting');
  await expectText(live, 'Waiting for you.', 'the approval card');
  // The %%agent cell stays busy while it waits, so Run All keeps the next cell queued behind it.
  await expectText(cellWith('%%agent').locator('.jp-InputPrompt'), '[*]', 'the prompt of the %%agent cell');
  await expectText(cellWith(EXPECT.afterCell).locator('.jp-InputPrompt'), '[*]', 'the prompt of the cell after it');
  if (n > 1) { // the previous card, now collapsed, says what happened (the live widget is still up)
    await expectText(cardTitle(n - 1), `Step ${n - 1} · ran (approved)`, `the card of step ${n - 1} after it ran`);
    const note = await cardContents(n - 1).textContent();
    if (!note.includes('You approved this action.')) {
      throw new Error(`the card of step ${n - 1} does not say "You approved this action."; it has:\n${note}`);
    }
  }
  log(`step ${n}: approval card is up`);
  await runButton.scrollIntoViewIfNeeded();
  await shot(n === 1 ? 'trace-waiting.png' : `trace-waiting-step${n}.png`);
  setStep(`clicking Run for step ${n}`);
  const button = await runButton.elementHandle();
  await button.click();
  setStep(`waiting for the kernel to take the click on Run of step ${n}`);
  await page.waitForFunction((el) => !el.isConnected, button, { timeout: STEP_TIMEOUT });
  log(`step ${n}: Run clicked, the approval card closed`);
}

async function main() {
  await openNotebook(page, LAB_URL, NOTEBOOK);

  setStep('running all cells');
  // Not awaited: the command's promise ends only when every cell has run, i.e. after our clicks.
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); });

  await approve(1);
  await approve(2);

  setStep('waiting for the static trace to replace the widget');
  await waitForText(staticTrace, EXPECT.finalAnswer, 'the static trace');
  await live.waitFor({ state: 'detached' });
  setStep("waiting for cell 4's output");
  await waitForText(cellWith(EXPECT.afterCell).locator('.jp-OutputArea-output'), EXPECT.after, "cell 4's output");
  log('run finished: static trace shown, cell 4 printed its line');

  setStep('checking the static trace');
  await expectText(staticTrace.locator('.smol-status').first(), 'done', 'the static trace header');
  await expectText(staticTrace, 'Final answer', 'the static trace');
  await expectText(staticTrace, EXPECT.finalAnswer, 'the final answer');
  await expectText(staticTrace, EXPECT.step2Code, "step 2's code"); // the newest step is open
  await expectText(staticTrace, 'Step 1 · ran (approved)', "step 1's summary");
  await expectText(staticTrace, 'Step 2 · ran (approved)', "step 2's summary");
  // Step 1 is one line until opened; its output is in its inserted cell, and the trace says so.
  const shownBefore = await staticTrace.innerText();
  if (shownBefore.includes(EXPECT.step1Code)) throw new Error(`step 1 is not collapsed:\n${shownBefore}`);
  await staticTrace.locator('summary').filter({ hasText: 'Step 1 · ran (approved)' }).click();
  await expectText(staticTrace, EXPECT.step1Code, "step 1's code, opened");
  await expectText(staticTrace, 'created answer_table', "step 1's changes");
  await expectText(staticTrace, 'outputs: in the cell below, marked “agent · step 1”', "step 1's outputs reference");
  const shownOpen = await staticTrace.innerText();
  if (shownOpen.includes(EXPECT.step1Output)) {
    throw new Error(`the static trace repeats step 1's output, which its inserted cell shows:\n${shownOpen}`);
  }
  await expectText(cellWith(EXPECT.step1Code).locator('.jp-OutputArea-output'), EXPECT.step1Output,
    "step 1's inserted cell");
  const highlighted = await staticTrace.locator('pre span[style*="color"]').count();
  if (highlighted === 0) throw new Error('the code in the static trace is not syntax-highlighted');
  await staticTrace.scrollIntoViewIfNeeded();
  await shot('trace-done.png');
}

await finish(async () => {
  await main();
  setStep('checking the browser console'); // a widget that cannot render logs an error there
  if (problems.length) throw new Error(`the browser reported errors:\n  ${problems.join('\n  ')}`);
}, {
  browser, page, artifacts: ARTIFACTS, totalTimeout: TOTAL_TIMEOUT, failureShot: 'trace-failure.png', done: 'PASS',
  record: () => writeFileSync(join(ARTIFACTS, 'trace-console.log'), problems.map((p) => `${p}\n`).join('')),
});

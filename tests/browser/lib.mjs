// What the browser scripts share: tests/browser/trace.mjs, tests/browser/cells.mjs and
// labextension/ui-tests/insert-cells.mjs. Each is started by its pytest file with LAB_URL,
// NOTEBOOK, ARTIFACTS (and CHROMIUM) in the environment; this module launches Debian's Chromium,
// opens the notebook, keeps the step under way for the error messages, collects the page's
// console errors, takes screenshots and ends the script (exit 0, or 1 with a failure screenshot).
//
// playwright-core is imported here, so node resolves it from tests/browser/node_modules (next to
// this file) for every script that imports this module, wherever that script lives.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const STEP_TIMEOUT = 30_000; // ms for any one thing to appear or happen

/**
 * The environment variables a script needs: LAB_URL, NOTEBOOK and ARTIFACTS (every script's), then `names`.
 * `runner` is the pytest file that sets them; a missing one is an error.
 */
export function scriptEnv(runner, ...names) {
  const env = {};
  for (const name of ['LAB_URL', 'NOTEBOOK', 'ARTIFACTS', ...names]) {
    if (!process.env[name]) throw new Error(`${name} is not set (run this through ${runner})`);
    env[name] = process.env[name];
  }
  return env;
}

const started = Date.now();
/** Seconds since the script started. */
export const elapsed = () => (Date.now() - started) / 1000;
export const log = (msg) => console.log(`[${elapsed().toFixed(1)} s] ${msg}`);

// What the script is doing now: said with every console error and in the failure message.
let step = 'launching Chromium';
export const setStep = (what) => { step = what; };

/** Chromium, headless, and one page on it; `shot(name)` saves a screenshot under `artifacts`. */
export async function launch(artifacts, { fullPage = false } = {}) {
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update'],
  });
  const page = await newPage(browser);
  const shot = async (name) => {
    const path = join(artifacts, name);
    await page.screenshot({ path, fullPage });
    log(`screenshot ${path}`);
  };
  return { browser, page, shot };
}

export async function newPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(STEP_TIMEOUT);
  return page;
}

/**
 * Push the page's uncaught errors, and its console errors (unless `consoleErrors` is false; those
 * whose text matches `ignore` are left out), onto `problems`, with the step they came in.
 */
export function collectErrors(page, problems, { ignore = null, consoleErrors = true, tab = '' } = {}) {
  const where = () => (tab ? `${tab}, while ${step}` : `while ${step}`);
  if (consoleErrors) {
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !(ignore && ignore.test(msg.text()))) {
        problems.push(`console error (${where()}): ${msg.text()} [${msg.location().url}]`);
      }
    });
  }
  page.on('pageerror', (err) => problems.push(`page error (${where()}): ${err.message}\n${err.stack}`));
}

/** Open the notebook (`openPath`: lab/tree/ for JupyterLab, notebooks/ for Notebook 7); wait for an idle kernel. */
export async function openNotebook(page, labUrl, notebook, openPath = 'lab/tree/') {
  setStep(`opening ${notebook}`);
  await page.goto(new URL(`${openPath}${notebook}`, labUrl).href);
  await page.locator('.jp-Notebook .jp-Cell').first().waitFor();
  setStep('waiting for the kernel to be idle');
  await page.waitForFunction((path) => {
    const w = window.jupyterapp?.shell?.currentWidget;
    const kernel = w?.sessionContext?.session?.kernel;
    return w?.context?.path === path && w.sessionContext.isReady && kernel?.connectionStatus === 'connected'
      && kernel.status === 'idle';
  }, notebook, { timeout: 60_000 });
  log('notebook open, kernel idle');
}

/** Every cell of the open notebook: model content plus what the page shows. */
export const snapshot = (page) => page.evaluate(() => {
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
    outputText: (w.node.querySelector('.jp-OutputArea')?.innerText ?? '').replace(/\u00a0/g, ' '),
    // a DataFrame is rendered as an HTML table when its cell is trusted, not as text
    htmlTables: w.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedHTMLCommon table').length,
    prompt: w.node.querySelector('.jp-InputPrompt')?.innerText ?? '',
  }));
});

/** Save the notebook and wait until it is no longer dirty. */
/** Run the cell at ``index`` as a user would (select it, Shift+Enter's command without moving on).
 * Not awaited: an agent cell runs for a while; the caller waits for what it needs. */
export async function runCellAt(page, index) {
  await page.evaluate((i) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = i;
    panel.content.mode = 'command';
    window.jupyterapp.commands.execute('notebook:run-cell');
  }, index);
}

export async function saveNotebook(page) {
  await page.evaluate(() => window.jupyterapp.commands.execute('docmanager:save'));
  await page.waitForFunction(() => !window.jupyterapp.shell.currentWidget.context.model.dirty);
}

/** Type `text` on a new line at the end of the cell at `index`, as a person would, then leave the editor. */
export async function typeAtEnd(page, index, text) {
  const editor = page.locator('.jp-Notebook .jp-Cell').nth(index).locator('.cm-content');
  await editor.scrollIntoViewIfNeeded();
  await editor.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(`\n${text}`);
  await page.keyboard.press('Escape');
}

/**
 * Run `main` within `totalTimeout` ms, then `record()` (write the report, the console log); then exit:
 * on success log `done` and close the browser; on failure say while doing what, save `failureShot`
 * under `artifacts`, close the browser and exit 1.
 */
export async function finish(main, { browser, page, artifacts, totalTimeout, failureShot, record = () => {},
  done = 'done' }) {
  const deadline = new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`the whole test took over ${totalTimeout / 1000} s`)), totalTimeout).unref();
  });
  let failure = null;
  try {
    await Promise.race([main(), deadline]);
  } catch (err) {
    failure = err;
  }
  record();
  if (failure) {
    console.error(`FAILED while ${step}: ${failure.message}`);
    const path = join(artifacts, failureShot);
    await page.screenshot({ path }).catch(() => {});
    console.error(`screenshot of the failing state: ${path}`);
    await browser.close().catch(() => {});
    process.exit(1);
  }
  log(done);
  await browser.close();
}

// The trace in JupyterLab's "JupyterLab Dark" theme: screenshots, and the contrast of what a person reads.
//
// Started by tests/test_theme_browser.py, which serves the notebook with the dark theme set in the user
// settings. Environment: LAB_URL, NOTEBOOK, ARTIFACTS, CHROMIUM (see lib.mjs), REPORT (where the JSON
// report goes), EXPECT (JSON: afterCell, after) and SHOTS (the theme's word in screenshot names: dark, light).
//
// The script runs all cells, measures the live trace while step 1 waits for approval, edits step 1
// (the editor and its button), approves the rest, then measures the static trace in JupyterLab and the
// same static HTML on a bare page (no --jp-* variables, as on GitHub) in a light and a dark colour scheme.
// Each measurement is a WCAG contrast ratio of a text element's computed colour against its effective
// background (walking up to the first opaque background, compositing translucent ones); the pytest file
// checks them. The script itself fails only when something it waits for does not appear.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  STEP_TIMEOUT, collectErrors, finish, launch, log, newPage, openNotebook, scriptEnv, setStep,
} from './lib.mjs';

const { LAB_URL, NOTEBOOK, ARTIFACTS, REPORT, EXPECT: expected, SHOTS } = scriptEnv(
  'tests/test_theme_browser.py', 'REPORT', 'EXPECT', 'SHOTS');
const EXPECT = JSON.parse(expected);
const TOTAL_TIMEOUT = 100_000;

const problems = [];
const report = { console: problems, contrast: {}, seen: {} };
const { browser, page, shot } = await launch(ARTIFACTS);
collectErrors(page, problems);

const live = page.locator('.jupyter-widgets.smol-magic-trace');
const staticTrace = page.locator('.jp-OutputArea-output .smol-magic-trace:not(.jupyter-widgets)');
const button = (label) => live.locator('button:not([disabled])').filter({ hasText: new RegExp(`^\\s*${label}\\s*$`) });
const cellWith = (code) => page.locator('.jp-Notebook .jp-Cell')
  .filter({ has: page.locator('.jp-InputArea', { hasText: code }) });

/**
 * On page `on`: the contrast of every element matching `selector` within the elements matching
 * `rootSelector` that has text of its own. Returns [{text, colour, background, ratio}], one per element.
 */
function measure(on, rootSelector, selector) {
  return on.evaluate(([rootSel, sel]) => {
    const parse = (c) => {
      let m = c.match(/^rgba?\(([^)]*)\)$/);
      if (m) {
        const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
        return [p[0] / 255, p[1] / 255, p[2] / 255, p.length > 3 ? p[3] : 1];
      }
      m = c.match(/^color\(srgb ([^)]*)\)$/);
      if (m) {
        const p = m[1].split(/[\s/]+/).filter(Boolean).map(Number);
        return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
      }
      throw new Error(`a colour this test cannot read: ${c}`);
    };
    const over = (top, below) => [0, 1, 2].map((i) => top[i] * top[3] + below[i] * (1 - top[3])).concat(1);
    const background = (el) => {
      const layers = [];
      for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
        const bg = parse(getComputedStyle(node).backgroundColor);
        if (bg[3] > 0) layers.push(bg);
        if (bg[3] >= 1) break;
      }
      let colour = [1, 1, 1, 1]; // the canvas, when no element paints an opaque background
      if (layers.length && layers[layers.length - 1][3] >= 1) colour = layers.pop();
      for (const layer of layers.reverse()) colour = over(layer, colour);
      return colour;
    };
    const lum = (c) => {
      const [r, g, b] = c.slice(0, 3).map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const hex = (c) => `#${c.slice(0, 3).map((v) => Math.round(v * 255).toString(16).padStart(2, '0')).join('')}`;
    const out = [];
    for (const root of document.querySelectorAll(rootSel)) {
      for (const el of root.querySelectorAll(sel)) {
        const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
        if (!own) continue;
        const bg = background(el);
        const fg = over(parse(getComputedStyle(el).color), bg);
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
        out.push({ text: own.slice(0, 40), colour: hex(fg), background: hex(bg),
          ratio: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100 });
      }
    }
    return out;
  }, [rootSelector, selector]);
}

/** In the page: the header's task, as shown (its first bold text) and in full (its tooltip). */
const taskShown = (trace) => {
  const el = trace.querySelector('.smol-magic-task') || trace.querySelector('b');
  return { text: el?.textContent ?? null, title: el?.getAttribute('title') ?? null };
};

// Code: every token span, and the code block itself (names and punctuation are its own text).
const CODE = 'pre.smol-magic-code, pre.smol-magic-code span, pre:has(> span[style*="color"]), pre:has(> span[style*="color"]) span';
// What a person reads to follow the run: the task, the step headers, the notes.
const HEADERS_LIVE = '.smol-magic-task, .jupyter-widget-Collapse-header, .jupyter-widget-Collapse-header *';
const HEADERS_STATIC = '.smol-magic-task, summary, .smol-status, .smol-magic-in-cell';

async function main() {
  await openNotebook(page, LAB_URL, NOTEBOOK);
  report.seen.theme = await page.evaluate(() => ({
    name: document.body.dataset.jpThemeName, light: document.body.dataset.jpThemeLight }));
  log(`theme: ${JSON.stringify(report.seen.theme)}`);

  setStep('running all cells');
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); });

  setStep('waiting for the approval card of step 1');
  await button('Run').waitFor();
  report.contrast.liveCode = await measure(page, '.jupyter-widgets.smol-magic-trace', CODE);
  report.contrast.liveHeaders = await measure(page, '.jupyter-widgets.smol-magic-trace', HEADERS_LIVE);
  await live.scrollIntoViewIfNeeded();
  await shot(`theme-${SHOTS}-live.png`);
  report.seen.liveTask = await live.evaluate(taskShown);

  setStep('editing step 1');
  await button('Edit').click();
  // The labextension puts a CodeMirror editor in place of the edit box (the textarea stays, hidden,
  // as the widget's model); the text a person edits is the editor's.
  const editor = live.locator('textarea');
  await editor.waitFor({ state: 'attached' });
  const codemirror = live.locator('.cm-editor .cm-content');
  await codemirror.waitFor({ state: 'visible' });
  report.seen.editor = await editor.evaluate((el) => {
    const cm = el.parentElement.closest('.smol-magic-edit, .widget-textarea')?.parentElement
      ?.querySelector('.cm-editor .cm-content') ?? document.querySelector('.smol-magic-trace .cm-editor .cm-content');
    return {
      font: getComputedStyle(cm ?? el).fontFamily, value: el.value, marked: !!el.closest('.smol-magic-edit'),
      upgraded: !!cm, shown: cm ? cm.innerText.replace(/\u200b/g, '') : null,
      highlighted: cm ? cm.querySelectorAll('span[class]').length : 0,
      codeFont: getComputedStyle(document.body).getPropertyValue('--jp-code-font-family').trim(),
    };
  });
  report.contrast.editorCode = await measure(page, '.jupyter-widgets.smol-magic-trace', '.cm-content .cm-line, .cm-content .cm-line span');
  // The button that runs the action (not "Run all"): what does it say now?
  const runNow = live.locator('button:not([disabled])').filter({ hasText: /^\s*Run(?! all)/ }).first();
  report.seen.runLabel = (await runNow.innerText()).trim();
  await shot(`theme-${SHOTS}-edit.png`);
  await runNow.click();

  for (const n of [2, 3]) {
    setStep(`approving step ${n}`);
    await live.locator('.jupyter-widget-Collapse-header').filter({ hasText: `Step ${n} · waiting for you` }).waitFor();
    const handle = await button('Run').elementHandle();
    await handle.click();
    await page.waitForFunction((el) => !el.isConnected, handle, { timeout: STEP_TIMEOUT });
  }

  setStep('waiting for the static trace and the cell after the agent');
  await staticTrace.first().waitFor();
  await live.waitFor({ state: 'detached' });
  await cellWith(EXPECT.afterCell).locator('.jp-OutputArea-output').filter({ hasText: EXPECT.after }).waitFor();
  await staticTrace.scrollIntoViewIfNeeded();
  report.seen.static = await staticTrace.evaluate((el) => ({
    text: el.innerText,
    steps: [...el.querySelectorAll('.smol-magic-step > details')].map((d) => ({
      open: d.open, summary: d.querySelector('summary').innerText,
      summaryHeight: d.querySelector('summary').getBoundingClientRect().height,
      lineHeight: parseFloat(getComputedStyle(d.querySelector('summary')).lineHeight) || 20 })),
    height: el.getBoundingClientRect().height,
  }));
  report.seen.staticTask = await staticTrace.evaluate(taskShown);
  report.seen.cells = await page.evaluate(() => window.jupyterapp.shell.currentWidget.content.widgets.map((w) => ({
    source: w.model.sharedModel.getSource(), generated: w.node.classList.contains('jp-smol-magic-generated'),
    outputText: (w.node.querySelector('.jp-OutputArea')?.innerText ?? '').replace(/\u00a0/g, ' ') })));
  await shot(`theme-${SHOTS}-static.png`);
  // Open every step (a person clicking each header) and measure all the code.
  await staticTrace.evaluate((el) => el.querySelectorAll('.smol-magic-step > details').forEach((d) => { d.open = true; }));
  report.seen.staticOpen = await staticTrace.innerText();
  report.contrast.staticCode = await measure(page, '.jp-OutputArea-output .smol-magic-trace:not(.jupyter-widgets)', CODE);
  report.contrast.staticHeaders = await measure(page,
    '.jp-OutputArea-output .smol-magic-trace:not(.jupyter-widgets)', HEADERS_STATIC);
  await staticTrace.scrollIntoViewIfNeeded();
  await shot(`theme-${SHOTS}-static-open.png`);

  // The saved static trace where no --jp-* variables exist (GitHub, a plain HTML page), light and dark.
  const html = await staticTrace.evaluate((el) => el.outerHTML);
  for (const scheme of ['light', 'dark']) {
    setStep(`rendering the static trace on a bare page, ${scheme} scheme`);
    const bare = await newPage(browser);
    await bare.emulateMedia({ colorScheme: scheme });
    await bare.setContent(`<!doctype html><html><body style="${scheme === 'dark'
      ? 'background:#0d1117;color:#e6edf3' : 'background:#fff;color:#1f2328'}">${html}</body></html>`);
    report.contrast[`bare${scheme === 'dark' ? 'Dark' : 'Light'}Code`] = await measure(bare, 'body', CODE);
    await bare.screenshot({ path: join(ARTIFACTS, `theme-${SHOTS}-bare-${scheme}.png`), fullPage: true });
    log(`screenshot ${join(ARTIFACTS, `theme-${SHOTS}-bare-${scheme}.png`)}`);
    await bare.close();
  }
}

await finish(main, {
  browser, page, artifacts: ARTIFACTS, totalTimeout: TOTAL_TIMEOUT, failureShot: `theme-${SHOTS}-failure.png`, done: 'PASS',
  record: () => writeFileSync(REPORT, JSON.stringify(report, null, 1)),
});

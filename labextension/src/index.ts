/**
 * smol-magic's frontend: the code actions of a `%%agent` cell become real notebook cells.
 *
 * The kernel opens a comm with target `smol_magic` and drives it (see PROTOCOL below);
 * this extension registers that target on the kernel of every notebook it sees, answers
 * `hello`, removes the cells an earlier run of the same agent cell made (keeping, unmarked,
 * those the user edited), inserts each step as an unexecuted code cell below the agent
 * cell, and marks generated cells (CSS class + "agent · step N" badge), also in notebooks
 * opened later.
 *
 * PROTOCOL (version 1), kernel -> frontend / frontend -> kernel:
 *   comm open, data {version: 1}      -> {type: "hello", version: 1, frontend: "jupyterlab" | "notebook7"}
 *   {type: "begin_run", agent_cell_id, run_id}
 *                                     -> {type: "begun", run_id, agent_cell_id, removed, kept,
 *                                         removed_ids, at}   (at: this browser's ISO time of the removal;
 *                                         the kernel skips the removed cells' execute_requests sent
 *                                         before it, which Run All had already queued)
 *                                        or {type: "error", run_id, message}
 *   {type: "insert", agent_cell_id, run_id, step, source, outputs, metadata}
 *                                     -> {type: "inserted", step, cell_id}
 *                                        or {type: "error", step, message}
 *   anything else                     -> {type: "error", message}
 *
 * Edit mode of the trace's approval card: a textarea with the CSS class `smol-magic-edit` (on the
 * textarea or on the ipywidgets Textarea around it) gets a CodeMirror editor with Python
 * highlighting in its place; every edit is written back into the textarea with an `input` event,
 * so the widget's model (and the kernel) sees it as typed text.
 *
 * Only the client whose request was being handled when the kernel opened the comm (the
 * comm_open's parent_header.session) answers; other clients of the same kernel (a second
 * tab, a collaborator, a console) keep the comm open and stay silent.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Cell, ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { CodeEditor, IEditorServices } from '@jupyterlab/codeeditor';
import { IConsoleTracker } from '@jupyterlab/console';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

/** Comm target the kernel opens. */
export const COMM_TARGET = 'smol_magic';
/** Protocol version this frontend speaks. */
export const PROTOCOL_VERSION = 1;
/** Cell metadata key of generated cells. */
export const METADATA_KEY = 'smol_magic';
/** Tag of generated cells (in metadata.tags). */
export const TAG = 'smol-magic';
/** CSS class of a generated cell's node. */
export const GENERATED_CLASS = 'jp-smol-magic-generated';

/** CSS class the trace sets on its edit textarea (or the Textarea widget around it). */
export const EDIT_CLASS = 'smol-magic-edit';
/** CSS class of the CodeMirror editor put in that textarea's place. */
export const EDITOR_CLASS = 'jp-smol-magic-editor';

/** What `metadata.smol_magic` holds on a generated cell (plus whatever the kernel sent). */
export interface IGeneratedInfo {
  agent_cell: string;
  run_id?: string;
  step?: number;
  source?: string;
  [key: string]: unknown;
}

type Reply = { [key: string]: string | number | boolean | string[] | null | undefined };

/** The smol-magic metadata of a cell, if it is a generated cell. */
export function generatedInfo(cell: ICellModel): IGeneratedInfo | null {
  const info = cell.getMetadata(METADATA_KEY) as unknown;
  if (info && typeof info === 'object' && typeof (info as IGeneratedInfo).agent_cell === 'string') {
    return info as IGeneratedInfo;
  }
  return null;
}

/** Index of the cell with this id, or -1. */
function indexOfCell(model: INotebookModel, cellId: string): number {
  const cells = model.cells;
  for (let i = 0; i < cells.length; i++) {
    if (cells.get(i).id === cellId) {
      return i;
    }
  }
  return -1;
}

/** Turn a generated cell into an ordinary one: drop the metadata key and the tag. */
function unmark(cell: ICellModel): void {
  cell.deleteMetadata(METADATA_KEY);
  const tags = cell.getMetadata('tags');
  if (Array.isArray(tags)) {
    const kept = tags.filter(tag => tag !== TAG);
    if (kept.length === 0) {
      cell.deleteMetadata('tags');
    } else if (kept.length !== tags.length) {
      cell.setMetadata('tags', kept);
    }
  }
}

/** Show or hide the mark of every cell widget of a notebook panel. */
function markCells(panel: NotebookPanel): void {
  for (const widget of panel.content.widgets as ReadonlyArray<Cell>) {
    if (!widget.model) {
      continue;
    }
    const info = generatedInfo(widget.model);
    const node = widget.node;
    if (info) {
      node.classList.add(GENERATED_CLASS);
      node.dataset.smolMagicStep = info.step === undefined || info.step === null ? '?' : String(info.step);
    } else if (node.classList.contains(GENERATED_CLASS)) {
      node.classList.remove(GENERATED_CLASS);
      delete node.dataset.smolMagicStep;
    }
  }
}

/** Normalise what the kernel sent as outputs into a list of nbformat outputs. */
function cleanOutputs(outputs: unknown): nbformat.IOutput[] {
  if (!Array.isArray(outputs)) {
    return [];
  }
  return outputs.filter(
    (out): out is nbformat.IOutput => !!out && typeof out === 'object' && typeof (out as any).output_type === 'string'
  );
}

/** JupyterLab's syntax colours (CodeMirror reads them from these variables). */
const TOKEN_VARIABLES = [
  'keyword', 'atom', 'number', 'def', 'variable', 'variable-2', 'variable-3', 'punctuation', 'property',
  'operator', 'comment', 'string', 'string-2', 'meta', 'qualifier', 'builtin', 'bracket', 'tag', 'attribute'
].map(name => `--jp-mirror-editor-${name}-color`);

/**
 * Some of the theme's syntax colours fall below WCAG AA (4.5:1) on the editor's background (the dark
 * theme's comments, the light theme's atoms): in the edit box, as in the trace, each is mixed 60/40
 * with the text colour, so it stays recognisable and becomes readable.
 */
function readableTokens(host: HTMLElement): void {
  const theme = getComputedStyle(document.body);
  for (const name of TOKEN_VARIABLES) {
    const value = theme.getPropertyValue(name).trim();
    if (value) {
      host.style.setProperty(name, `color-mix(in srgb, ${value} 60%, var(--jp-content-font-color1))`);
    }
  }
}

/**
 * Puts a CodeMirror editor (Python) in place of every `smol-magic-edit` textarea on the page, now
 * and as widgets render. The textarea stays in the DOM, hidden, as the widget's own view of the
 * value: edits go into it with an `input` and a `change` event (what ipywidgets listens to), and
 * a value the kernel sets later is taken over by the editor.
 */
function watchEditTextareas(services: IEditorServices): void {
  const mounted = new Map<HTMLTextAreaElement, { editor: CodeEditor.IEditor; model: CodeEditor.Model; synced: string }>();

  const mount = (area: HTMLTextAreaElement) => {
    const host = document.createElement('div');
    host.className = EDITOR_CLASS;
    readableTokens(host);
    area.insertAdjacentElement('afterend', host);
    area.style.display = 'none';
    const model = new CodeEditor.Model({ mimeType: 'text/x-python' });
    model.sharedModel.setSource(area.value);
    const editor = services.factoryService.newInlineEditor({ host, model });
    const entry = { editor, model, synced: area.value };
    mounted.set(area, entry);
    model.sharedModel.changed.connect(() => {
      const value = model.sharedModel.getSource();
      if (value !== area.value) {
        area.value = value;
        entry.synced = value;
        area.dispatchEvent(new Event('input', { bubbles: true }));
        area.dispatchEvent(new Event('change', { bubbles: true }));
      }
    });
  };

  const scan = () => {
    for (const [area, entry] of mounted) {
      if (!area.isConnected) {
        entry.editor.dispose();
        entry.model.dispose();
        mounted.delete(area);
      } else if (area.value !== entry.synced) {
        entry.synced = area.value; // set by the kernel: show it
        entry.model.sharedModel.setSource(area.value);
      }
    }
    const found = document.querySelectorAll<HTMLTextAreaElement>(`textarea.${EDIT_CLASS}, .${EDIT_CLASS} textarea`);
    for (const area of Array.from(found)) {
      if (!mounted.has(area)) {
        mount(area);
      }
    }
  };

  let queued = false;
  const observer = new MutationObserver(() => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        scan();
      });
    }
  });
  observer.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['style', 'class'] });
  scan();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'smol-magic-labextension:plugin',
  description: "Puts the code actions of smol-magic's %%agent cells into the notebook as real cells.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IConsoleTracker, IEditorServices],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    consoles: IConsoleTracker | null,
    editorServices: IEditorServices | null
  ) => {
    if (editorServices) {
      watchEditTextareas(editorServices);
    }
    const frontend = /notebook/i.test(app.name) ? 'notebook7' : 'jupyterlab';
    const registered = new WeakSet<Kernel.IKernelConnection>();
    const pending = new WeakSet<NotebookPanel>();

    /** The notebook panels whose session holds this kernel connection (views of one model). */
    const panelsOf = (kernel: Kernel.IKernelConnection): NotebookPanel[] => {
      const found: NotebookPanel[] = [];
      notebooks.forEach(panel => {
        if (panel.sessionContext.session?.kernel === kernel) {
          found.push(panel);
        }
      });
      return found;
    };

    /** Does some other notebook on the same kernel hold this cell? Then that one answers. */
    const otherNotebookHas = (kernel: Kernel.IKernelConnection, own: INotebookModel | null, cellId: string) => {
      let has = false;
      notebooks.forEach(panel => {
        const model = panel.model;
        if (model && model !== own && panel.sessionContext.session?.kernel?.id === kernel.id) {
          has = has || indexOfCell(model, cellId) >= 0;
        }
      });
      return has;
    };

    const scheduleMark = (panel: NotebookPanel) => {
      if (pending.has(panel)) {
        return;
      }
      pending.add(panel);
      requestAnimationFrame(() => {
        pending.delete(panel);
        if (!panel.isDisposed) {
          markCells(panel);
        }
      });
    };

    const remark = (kernel: Kernel.IKernelConnection) => {
      for (const panel of panelsOf(kernel)) {
        markCells(panel); // now, for anyone looking right after the reply...
        scheduleMark(panel); // ...and once the notebook has laid out new cell widgets
      }
    };

    /** begin_run: drop the cells earlier runs made for this agent cell; keep edited ones, unmarked. */
    const beginRun = (model: INotebookModel, agentCellId: string) => {
      let kept = 0;
      const doomed: number[] = [];
      const cells = model.cells;
      for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        const info = generatedInfo(cell);
        if (!info || info.agent_cell !== agentCellId) {
          continue;
        }
        if (typeof info.source === 'string' && cell.sharedModel.getSource() === info.source) {
          doomed.push(i);
        } else {
          unmark(cell);
          kept++;
        }
      }
      const removedIds = doomed.map(i => cells.get(i).id);
      model.sharedModel.transact(() => {
        for (const i of doomed.reverse()) {
          model.sharedModel.deleteCell(i);
        }
      });
      return { removedIds, kept };
    };

    /** insert: a code cell after the agent cell and the cells this run already put there. */
    const insert = (model: INotebookModel, agentIndex: number, data: any): string => {
      const agentCellId = String(data.agent_cell_id);
      let index = agentIndex + 1;
      while (index < model.cells.length && generatedInfo(model.cells.get(index))?.agent_cell === agentCellId) {
        index++;
      }
      const source = typeof data.source === 'string' ? data.source : '';
      const extra = data.metadata && typeof data.metadata === 'object' && !Array.isArray(data.metadata) ? data.metadata : {};
      const info: IGeneratedInfo = {
        ...extra,
        agent_cell: agentCellId,
        run_id: data.run_id,
        step: data.step,
        source
      };
      model.sharedModel.insertCell(index, {
        cell_type: 'code',
        source,
        outputs: cleanOutputs(data.outputs),
        execution_count: null,
        metadata: { tags: [TAG], [METADATA_KEY]: info } as any
      });
      const cell = model.cells.get(index);
      // The outputs come from this notebook's own kernel, as if the cell had run here.
      (cell as ICodeCellModel).trusted = true;
      return cell.id;
    };

    const handle = (kernel: Kernel.IKernelConnection, comm: Kernel.IComm, data: any) => {
      const reply = (content: Reply) => {
        if (!comm.isDisposed) {
          comm.send(content as any);
        }
      };
      const type = data?.type;
      if (type !== 'begin_run' && type !== 'insert') {
        reply({ type: 'error', message: `unknown message type ${JSON.stringify(type)}` });
        return;
      }
      const agentCellId = String(data.agent_cell_id ?? '');
      const model = panelsOf(kernel)[0]?.model ?? null;
      const agentIndex = model ? indexOfCell(model, agentCellId) : -1;
      if (!model || agentIndex < 0) {
        if (!otherNotebookHas(kernel, model, agentCellId)) {
          const message = model
            ? `the agent cell ${agentCellId} is not in the notebook ${panelsOf(kernel)[0].context.path}`
            : 'no notebook holds this kernel';
          reply(type === 'insert' ? { type: 'error', step: data.step, message } : { type: 'error', run_id: data.run_id, message });
        }
        return;
      }
      try {
        if (type === 'begin_run') {
          const { removedIds, kept } = beginRun(model, agentCellId);
          reply({
            type: 'begun',
            run_id: data.run_id,
            agent_cell_id: agentCellId,
            removed: removedIds.length,
            kept,
            removed_ids: removedIds,
            at: new Date().toISOString()
          });
        } else {
          const cellId = insert(model, agentIndex, data);
          reply({ type: 'inserted', step: data.step, cell_id: cellId });
        }
      } catch (err) {
        console.error('smol-magic: could not handle', data, err);
        const message = String((err as Error)?.message ?? err);
        reply(type === 'insert' ? { type: 'error', step: data.step, message } : { type: 'error', run_id: data.run_id, message });
      } finally {
        remark(kernel);
      }
    };

    /** Register the comm target on a notebook's kernel connection (idempotent). */
    const register = (kernel: Kernel.IKernelConnection | null | undefined) => {
      if (!kernel || kernel.isDisposed || registered.has(kernel)) {
        return;
      }
      registered.add(kernel);
      kernel.registerCommTarget(COMM_TARGET, (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg) => {
        // Every client of the kernel (another browser tab, a collaborator) sees the comm open.
        // The one whose request made the kernel open it answers; the others stay silent, so
        // there is one hello and no duplicate cells in a shared (collaborative) document.
        const owner = (msg.parent_header as Partial<KernelMessage.IHeader>)?.session;
        if (owner && owner !== kernel.clientId) {
          comm.onMsg = () => undefined;
          return;
        }
        comm.onMsg = (m: KernelMessage.ICommMsgMsg) => handle(kernel, comm, m.content.data);
        comm.send({ type: 'hello', version: PROTOCOL_VERSION, frontend });
      });
    };

    /**
     * A console on the same kernel also sees the comm open; without a target it would close
     * the comm for everyone. There it is registered silently: no hello, messages ignored.
     */
    const registerSilent = (kernel: Kernel.IKernelConnection | null | undefined) => {
      if (!kernel || kernel.isDisposed || registered.has(kernel)) {
        return;
      }
      registered.add(kernel);
      kernel.registerCommTarget(COMM_TARGET, (comm: Kernel.IComm) => {
        comm.onMsg = () => undefined;
      });
    };

    const watchNotebook = (panel: NotebookPanel) => {
      const session = panel.sessionContext;
      register(session.session?.kernel);
      session.kernelChanged.connect((_, change) => register(change.newValue));
      session.ready.then(() => register(session.session?.kernel)).catch(() => undefined);
      panel.context.ready
        .then(() => {
          markCells(panel);
          scheduleMark(panel);
          panel.content.modelContentChanged.connect(() => scheduleMark(panel));
        })
        .catch(() => undefined);
    };

    notebooks.forEach(watchNotebook);
    notebooks.widgetAdded.connect((_, panel) => watchNotebook(panel));

    if (consoles) {
      const watchConsole = (panel: { sessionContext: NotebookPanel['sessionContext'] }) => {
        const session = panel.sessionContext;
        registerSilent(session.session?.kernel);
        session.kernelChanged.connect((_, change) => registerSilent(change.newValue));
        session.ready.then(() => registerSilent(session.session?.kernel)).catch(() => undefined);
      };
      consoles.forEach(watchConsole);
      consoles.widgetAdded.connect((_, panel) => watchConsole(panel));
    }
  }
};

export default plugin;

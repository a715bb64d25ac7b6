"""``%agent forget N|--all``: delete stored runs, their steps and recorded replies."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ...store import queries
from .. import stored
from .base import Parser

HELP = "forget N [N ...] | forget --all [--all-notebooks]: delete stored runs with their steps and replies"


def parser():
    p = Parser("forget")
    p.add_argument("numbers", nargs="*", type=int, metavar="N", help="the ids of the runs (%%agent runs)")
    p.add_argument("--all", action="store_true", help="every stored run of this notebook")
    p.add_argument("--all-notebooks", action="store_true", help="with --all: of every notebook")
    return p


def run(magics: Any, args: Any) -> None:
    if bool(args.numbers) == args.all:
        raise UsageError("%agent forget N [N ...] deletes those runs; %agent forget --all deletes this notebook's "
                         "(add --all-notebooks for every run of the store)")
    if args.all_notebooks and not args.all:
        raise UsageError("--all-notebooks goes with --all: %agent forget --all --all-notebooks")
    store = magics.stores.required(magics.store)
    if args.all:
        notebook = None if args.all_notebooks else stored.notebook_name(magics.shell)
        done = queries.forget(store, None, notebook)
        whose = "of every notebook" if notebook is None else "of this notebook"
    else:
        found = queries.existing(store, args.numbers)
        missing = sorted(set(args.numbers) - set(found))
        if missing:
            raise UsageError(f"no stored run {', '.join(map(str, missing))}; nothing was deleted "
                             "(%agent runs --all-notebooks lists them)")
        done = queries.forget(store, found, None)
        gone = [i for i in found if i not in done.running]
        whose = f"run{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))}"
    if magics.conversation_tail is not None and not queries.existing(store, [magics.conversation_tail]):
        magics.conversation_tail = None  # the next run's conversation no longer has a stored start
    if done.running:
        print(f"smol-magic: run{'s' if len(done.running) > 1 else ''} {', '.join(map(str, done.running))} "
              "still running in a kernel: not forgotten (forget it when it has ended)")
    if not done.runs:
        if not done.running:
            print(f"smol-magic: no stored runs {whose} to forget")
        return
    what = whose if not args.all else f"{done.runs} run{'s' if done.runs != 1 else ''} {whose}"
    print(f"smol-magic: forgot {what}: {done.runs} run{'s' if done.runs != 1 else ''}, {done.steps} steps and "
          f"{done.messages} messages no other run uses deleted from {store.path}")

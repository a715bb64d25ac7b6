"""Rules for file, network and database I/O: what a call reads, writes or deletes, and where."""

from __future__ import annotations

import ast
import os
import re

from .nodes import _MISSING, _callee_name, _kw
from .rules import (
    DB_WRITERS, MODE_IO, NETWORK_CALLS, PATH_METHODS, READERS, SQL_READERS, SQL_STRINGS, UNPICKLERS,
    URL_SCHEMES, WEAK_IO, WRITERS, _OP_CAP, _OP_INSTEAD, _OP_VERB, _PATH_KWS, _PERSISTENCE_FILES,
    _PLOTTING_BACKENDS, _SECRET_FILES,
)


def _full_path(path: str, root: str) -> str:
    expanded = os.path.expanduser(path)
    joined = expanded if os.path.isabs(expanded) else os.path.join(root, expanded)
    try:
        return os.path.realpath(joined)
    except (OSError, ValueError):
        return os.path.normpath(joined)


class FileRules:
    """File, network and SQL I/O. A part of the checker (``checker._Guard``)."""

    # -- calls: files, network, pickles ---------------------------------------------------------

    def open_call(self, node: ast.Call) -> None:
        target = node.args[0] if node.args else _kw(node, "file")
        mode_node = node.args[1] if len(node.args) > 1 else _kw(node, "mode")
        if target is not None:
            vals = self.values(target)
            if vals is not None and any(isinstance(v, int) and not isinstance(v, bool) for v in vals):
                self.deny(node, "open() on a raw file descriptor is not allowed", "open files by name")
                return
        op = self.mode_op(node, mode_node)
        if op is None:
            return
        self.judge_path(node, target, op, "open()")

    def mode_op(self, node: ast.Call, mode_node: ast.AST | None) -> str | None:
        if mode_node is None:
            return "read"
        modes = self.values(mode_node)
        if modes is None or not all(isinstance(m, str) for m in modes):
            self.ask(node, "open() with a mode computed at run time may write files", "write_files",
                     "use a literal mode such as 'r'")
            return None
        return "write" if any(set(m) & set("wax+") for m in modes) else "read"

    def io_call(self, node: ast.Call, name: str, module: str | None, recv: ast.AST | None) -> None:
        if recv is not None and name in PATH_METHODS and self.path_kind(recv) == "path":
            op = PATH_METHODS[name]
            if name == "open":
                mode_node = node.args[0] if node.args else _kw(node, "mode")
                op = self.mode_op(node, mode_node)
                if op is None:
                    return
            self.judge_path(node, recv, op, f".{name}()")
            if name in ("rename", "replace") and node.args:
                self.judge_path(node, node.args[0], "write", f".{name}()")
            return
        if recv is not None and name in ("home", "cwd", "expanduser"):
            return
        if name in NETWORK_CALLS or name.startswith("fetch_"):
            self.ask(node, f"{name}() downloads data from the network", "network",
                     "ask the user to download the data into the notebook's folder")
            return
        if name in MODE_IO:
            path_at, mode_at, default = MODE_IO[name]
            target = self.path_arg(node, path_at)
            mode_node = node.args[mode_at] if len(node.args) > mode_at else _kw(node, "mode")
            modes = {default} if mode_node is None else self.values(mode_node)
            if modes is None or not all(isinstance(m, str) for m in modes):
                self.ask(node, f"{name}() with a mode computed at run time may write files", "write_files",
                         "use a literal read mode such as 'r'")
                return
            writes = any(set(m) & set("wax+") for m in modes)
            if name == "HDFStore":
                self.ask(node, "HDFStore() may load pickled objects: a pickle runs code stored in the file",
                         "unpickle", "read data from CSV, Parquet or JSON")
            self.judge_path(node, target, "write" if writes else "read", f"{name}()", strict=True)
            return
        if name in SQL_READERS:
            con = node.args[1] if len(node.args) > 1 else _kw(node, "con") or _kw(node, "connection")
            vals = self.values(con) if con is not None else None
            for value in vals or ():
                if isinstance(value, str):
                    if value.startswith("sqlite:///"):
                        self.judge_path(node, ast.Constant(value[len("sqlite:///"):]), "read", f"{name}()")
                    else:
                        self.ask(node, f"{name}() connects to the database {value.split('@')[-1][:60]!r}", "network",
                                 "ask the user for the data")
            if con is not None and vals is None and self.stringish(con):
                self.ask(node, f"{name}() connects to a database named at run time", "computed_access",
                         "use a connection the user made")
            return
        if name in SQL_STRINGS and recv is not None and ((module or "").startswith("polars") or
                                                         self.built_by(recv) in ("SQLContext", "sql")):
            query = node.args[0] if node.args else _kw(node, "query")
            self.sql_string(node, query, name)
            return
        if name == "sql" and recv is not None and node.args and self.values(node.args[0]) is not None:
            self.sql_string(node, node.args[0], name)
        if name in ("use", "switch_backend") and (module or "").startswith("matplotlib") or name == "set_option":
            for value in (self.values(node.args[-1]) if node.args else None) or ():
                if name == "set_option" and len(node.args) >= 2 and self.values(node.args[0]) == {"plotting.backend"} \
                        and value not in _PLOTTING_BACKENDS:
                    self.deny(node, f"the plotting backend {value!r} is a module pandas would import by name",
                              "use the default plotting backend")
            return
        if name in DB_WRITERS:
            self.ask(node, f"{name}() writes to a database", "write_files",
                     "keep the result in a variable; the user can save it")
            return
        if name in UNPICKLERS:
            target = self.path_arg(node, UNPICKLERS[name])
            self.ask(node, f"{name}() loads pickled data: a pickle runs code stored in the file, and the guard "
                           "cannot see that code", "unpickle",
                     "read data from CSV, Parquet or JSON, or ask the user to approve this file")
            if target is not None:
                self.judge_path(node, target, "read", f"{name}()", strict=False)
            return
        if name == "load" and (module or "").startswith("numpy") or name == "load" and _kw(node, "allow_pickle"):
            mmap = _kw(node, "mmap_mode")
            if mmap is not None and not self.values(mmap) <= {None, "r", "c"} if self.values(mmap) is not None else \
                    mmap is not None:
                self.judge_path(node, self.path_arg(node, 0), "write", "np.load(..., mmap_mode=...)")
            pickle_kw = _kw(node, "allow_pickle")
            if pickle_kw is not None:
                vals = self.values(pickle_kw)
                if vals != {False}:
                    self.ask(node, "np.load(..., allow_pickle=True) loads pickled objects: a pickle runs code stored "
                                   "in the file", "unpickle", "save arrays without pickles (allow_pickle=False)")
            target = self.path_arg(node, 0)
            self.judge_path(node, target, "read", "np.load()", strict=True)
            return
        if name in ("load", "loads") and module is not None and module.startswith("statsmodels"):
            self.ask(node, f"{module}.{name}() loads a pickle", "unpickle", "refit the model instead")
            return
        if name in READERS:
            target = self.path_arg(node, READERS[name])
            if target is not None:
                self.judge_path(node, target, "read", f"{name}()", strict=True)
            return
        if name in WRITERS:
            target = self.path_arg(node, WRITERS[name])
            if target is not None and not (isinstance(target, ast.Constant) and target.value is None):
                self.judge_path(node, target, "write", f"{name}()", strict=True)
            return
        if name in WEAK_IO:
            op, index = WEAK_IO[name]
            on_module = module is not None or (recv is None and isinstance(node.func, ast.Name) and
                                               node.func.id in self.bindings)
            if name in ("remove", "rmtree", "copy", "move", "copyfile", "copy2", "copytree") and not on_module:
                return
            target = self.path_arg(node, index)
            if target is None:
                return
            kind = self.path_kind(target)
            literal = self.paths(target)
            if literal is not None and any(URL_SCHEMES.match(p) for p in literal):
                self.judge_path(node, target, op, f"{name}()")
                return
            if on_module or kind == "path" or (literal is not None and recv is None):
                if kind in ("buffer", "file"):
                    return
                if literal is None and not on_module and kind != "path":
                    return
                self.judge_path(node, target, op, f"{name}()", strict=on_module)

    def built_by(self, expr: ast.AST, depth: int = 0) -> str | None:
        """The name of the function whose call made ``expr`` (``ctx = pl.SQLContext()`` -> 'SQLContext')."""
        if depth > 6:
            return None
        if isinstance(expr, ast.Call):
            return _callee_name(expr.func)
        if isinstance(expr, ast.Name):
            for value in self.code_bindings(expr.id) or ():
                if value[0] in ("expr", "with"):
                    got = self.built_by(value[1], depth + 1)
                    if got:
                        return got
            live = self.ns.get(expr.id, _MISSING)
            if live is not _MISSING:
                return type(live).__name__
        return None

    def sql_string(self, node: ast.Call, query: ast.AST | None, name: str) -> None:
        """polars SQL reads files through table functions: read_csv('/etc/passwd')."""
        if query is None:
            return
        vals = self.values(query)
        if vals is None:
            self.ask(node, f"{name}() with a query computed at run time can read files through table functions",
                     "computed_access", "use a literal query")
            return
        for text in vals:
            if not isinstance(text, str):
                continue
            for match in re.finditer(r"\b(read|scan)_\w+\s*\(\s*(['\"])(.*?)\2", text, re.I):
                self.judge_one_path(node, match.group(3), "read", f"{name}() ({match.group(1)}_...)")

    def path_arg(self, node: ast.Call, index: int) -> ast.AST | None:
        for kw in node.keywords:
            if kw.arg in _PATH_KWS:
                return kw.value
        if index < len(node.args):
            arg = node.args[index]
            return None if isinstance(arg, ast.Starred) else arg
        return None

    def judge_path(self, node: ast.Call, target: ast.AST | None, op: str, what: str, strict: bool = True) -> None:
        """One file operation on ``target``: read, list, write or delete."""
        if target is None:
            if op in ("write", "delete"):
                self.ask(node, f"{what} {'writes' if op == 'write' else 'deletes'} a file", _OP_CAP[op],
                         _OP_INSTEAD[op])
            return
        kind = self.path_kind(target)
        if kind in ("buffer", "file") and op != "delete":
            return  # an in-memory buffer, or a file whose open() was judged
        if isinstance(target, ast.Call) and _callee_name(target.func) == "open":
            return
        paths = self.paths(target)
        if paths is None:
            if op in ("read", "list"):
                if strict or kind == "path":
                    self.ask(node, f"{what} reads a path computed at run time ({self.snippet(target)}), which cannot "
                                   "be checked before it runs", "computed_access",
                             "use a literal path inside the notebook's folder")
            else:
                self.ask(node, f"{what} {_OP_VERB[op]} {self.snippet(target)} (a path computed at run time)",
                         _OP_CAP[op], _OP_INSTEAD[op])
            return
        for path in sorted(paths):
            self.judge_one_path(node, path, op, what)

    def judge_one_path(self, node: ast.Call, path: str, op: str, what: str) -> None:
        if not path:
            return
        if URL_SCHEMES.match(path):
            self.ask(node, f"{what} accesses the network ({path[:80]})", "network",
                     "ask the user to download the data into the notebook's folder")
            if op in ("write", "delete"):
                self.ask(node, f"{what} {_OP_VERB[op]} {path[:80]}", _OP_CAP[op], _OP_INSTEAD[op])
            return
        if op in ("read", "list") and ("\n" in path or path.lstrip()[:1] in ("<", "{", "[")):
            return  # literal data (pd.read_json('{"a": 1}')), not a path
        if path.startswith("file://"):
            path = path[7:]
        full = _full_path(path, self.root_dir)
        shown = path if len(path) <= 80 else path[:77] + "..."
        if _SECRET_FILES.search(full) or _SECRET_FILES.search(path):
            self.deny(node, f"{what} touches {shown!r}, a credentials or secrets location",
                      "credentials are not available to agent code; ask the user for what you need")
            return
        inside = full == self.root_dir or full.startswith(self.root_dir.rstrip("/") + "/")
        if op in ("write", "delete") and _PERSISTENCE_FILES.search(full) and not inside:
            self.deny(node, f"{what} {_OP_VERB[op]} {shown!r}, a startup or system location (code there runs later, "
                            "outside the guard)", "write only inside the notebook's folder")
            return
        if op in ("read", "list"):
            if not inside:
                self.ask(node, f"{what} reads {shown!r}, outside the notebook's folder", "read_outside",
                         "work with files in the notebook's folder, or ask the user to copy the file there")
            return
        where = "" if inside else ", outside the notebook's folder"
        self.ask(node, f"{what} {_OP_VERB[op]} {shown!r}{where}", _OP_CAP[op], _OP_INSTEAD[op])

"""A static policy over the AST of each action: allow, ask or deny, with reasons.

This is a policy, not a sandbox: it stops what a careless or confused model
might do in the user's kernel. It cannot stop a determined attacker; run
untrusted inputs in an isolated kernel (a container or VM) instead.

The policy is data:

- ``Policy.authorized_imports``: modules the agent may import (``pkg``,
  ``pkg.*`` and ``*`` patterns). Some modules are never importable.
- ``Policy.allow``: capabilities a user grants (``CAPABILITIES``); each turns
  one kind of ``ask`` into ``allow``. ``deny`` cannot be granted away; only
  ``Policy(enabled=False)`` turns the guard off.
- ``GuardContext``: the live namespace the action will run in, which names
  agent runs created (free to rebind) and which the user protected.

``check(code, policy, context)`` returns a ``GuardVerdict`` (a ``Verdict`` with
structured ``findings``); every reason says what was found, on which line, what
would allow it (for ``ask``) and what to do instead.
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import html
import io
import itertools
import numbers
import os
import re
import sys
import types
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path, PurePath
from typing import Any, Callable, Container, Iterable, Mapping

from .memory import Verdict

__all__ = [
    "CAPABILITIES", "DEFAULT_AUTHORIZED_IMPORTS", "Finding", "GuardContext", "GuardVerdict", "Policy",
    "check", "redact_secrets", "sanitize_html", "sanitize_outputs", "undoable",
]

DEFAULT_AUTHORIZED_IMPORTS = [
    "math", "statistics", "datetime", "time", "re", "json", "collections", "itertools", "functools",
    "random", "string", "decimal", "fractions", "dataclasses", "typing", "textwrap", "io", "csv",
    "pandas", "numpy", "scipy", "matplotlib", "seaborn", "sklearn", "statsmodels", "plotly",
    "polars", "pyarrow", "IPython.display",
]

#: Capabilities a user can grant (``%config AgentMagics.allow = [...]`` or per cell); each turns
#: one kind of ``ask`` into ``allow``.
CAPABILITIES: dict[str, str] = {
    "write_files": "write or create files (and databases)",
    "delete_files": "delete, move or rename files",
    "network": "access the network (downloads, URLs, HTTP clients)",
    "read_outside": "read files outside the notebook's folder",
    "computed_access": "use paths, attribute names, format strings or expressions computed at run time",
    "mutate_data": "rebind, delete or change in place variables the user made",
    "unpickle": "load pickles (a pickle runs code stored in the file)",
}

# -- what is never allowed -----------------------------------------------------------------------

# Never importable, nor reachable through an attribute chain, whatever the authorized imports say.
FORBIDDEN_MODULES = frozenset({
    "os", "sys", "subprocess", "importlib", "builtins", "ctypes", "_ctypes", "cffi", "socket", "_socket",
    "pty", "signal", "_signal", "multiprocessing", "threading", "_thread", "asyncio", "concurrent",
    "inspect", "gc", "code", "codeop", "marshal", "types", "runpy", "pkgutil", "zipimport", "imp",
    "IPython", "ipykernel", "jupyter_client", "comm", "ipywidgets", "posix", "nt", "posixpath", "ntpath",
    "genericpath", "_posixsubprocess", "_winapi", "msvcrt", "winreg", "pdb", "bdb", "trace", "faulthandler",
    "resource", "fcntl", "termios", "tty", "mmap", "atexit", "site", "sitecustomize", "usercustomize",
    "webbrowser", "pydoc", "__main__", "_frozen_importlib", "_frozen_importlib_external", "_imp",
    "_io", "_operator", "copyreg", "_pickle", "_weakref", "weakref", "sysconfig", "platform", "getpass",
    # they run code given as strings, start processes or browsers, or install code
    "timeit", "doctest", "cProfile", "profile", "unittest", "idlelib", "tkinter", "turtle", "ensurepip", "venv",
    "pip", "setuptools", "distutils", "compileall", "py_compile", "zipapp", "antigravity", "jinja2", "numexpr",
})
FORBIDDEN_SUBMODULES = (
    "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.testing._private", "numpy.testing.extbuild",
    "pyarrow.cffi", "pyarrow.jvm", "pandas.io.clipboard", "pandas.io.clipboards", "matplotlib.testing",
    "polars.plugins", "scipy._lib", "sklearn.utils._testing", "logging.config", "ctypes.util",
)
# Modules that are exceptions to a forbidden root.
ALLOWED_UNDER_FORBIDDEN = ("IPython.display",)

# Builtins agent code may not name at all.
FORBIDDEN_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "breakpoint", "input",
    "help", "exit", "quit", "open_code", "license",
})
# IPython's own objects in the namespace: the shell, the input history, the output cache.
IPYTHON_NAMES = frozenset({"get_ipython", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii", "__builtin__"})
_IPYTHON_INPUT = re.compile(r"_i\d+$")

# Attribute names denied on any object: the names libraries use for process, OS and interpreter
# access (``pd.io.common.os``, ``random._os``, ``collections._sys``, ``dataclasses.builtins``,
# ``np.ctypeslib``), module loaders, the environment, frames, and IPython's shell.
FORBIDDEN_ATTRS: dict[str, str] = {}
for _names, _why in (
    ("os _os sys _sys subprocess _subprocess _posixsubprocess posix nt ctypes _ctypes ctypeslib cffi "
     "builtins _builtins __builtins__ importlib _importlib pty _thread multiprocessing runpy marshal "
     "ipykernel f2py", "process, OS or interpreter access"),
    ("system popen Popen getoutput getstatusoutput check_output check_call spawnl spawnle spawnlp "
     "spawnlpe spawnv spawnve spawnvp spawnvpe execl execle execlp execlpe execv execve execvp execvpe "
     "fork forkpty posix_spawn posix_spawnp startfile killpg create_subprocess_exec create_subprocess_shell "
     "subprocess_run_helper subprocess_run_for_testing", "running processes"),
    ("import_module import_optional_dependency _import_module load_module exec_module module_from_spec "
     "find_spec resolve_name import_string load_library register_plugin_function dlopen foreign_buffer "
     "CodeType FunctionType", "loading modules, libraries or code objects"),
    ("environ environb getenv getenvb putenv unsetenv", "reading or changing environment variables"),
    ("f_globals f_locals f_builtins f_back f_code f_trace tb_frame tb_next gi_frame gi_code gi_yieldfrom "
     "cr_frame cr_code cr_await ag_frame ag_code _getframe settrace setprofile currentframe func_globals",
     "frame, traceback, generator or coroutine introspection"),
    ("get_ipython run_line_magic run_cell_magic run_cell run_cell_async user_ns user_global_ns "
     "user_ns_hidden", "IPython's shell"),
    ("Javascript display_javascript publish_display_data IFrame ScribdDocument VimeoVideo YouTubeVideo "
     "_repr_javascript_", "active content in the user's browser"),
    ("as_strided", "reading raw memory (use sliding_window_view)"),
    ("from_string get_template select_template get_or_select_template compile_expression from_code "
     "from_module_dict compile_templates from_custom_template load_extension enable_load_extension",
     "templates or extensions that run code"),
):
    for _name in _names.split():
        FORBIDDEN_ATTRS[_name] = _why

# Module names that are also ordinary attribute names (``lf.inspect()``, ``row.code``): denied only
# when reached through a chain of modules.
AMBIGUOUS_MODULE_ATTRS = frozenset({
    "inspect", "signal", "gc", "threading", "socket", "shutil", "pickle", "types", "tempfile", "weakref",
    "warnings", "logging", "platform", "code", "codeop", "mmap", "zipfile", "tarfile", "glob", "copyreg",
    "sysconfig", "atexit", "asyncio", "concurrent", "webbrowser", "urllib", "http", "pydoc", "uuid",
})

# Dunder attributes that are harmless to read. Everything else (``__class__.__base__``,
# ``__globals__``, ``__subclasses__``, ``__dict__``, ``__self__``, ``__code__`` ...) is denied.
SAFE_DUNDERS = frozenset({
    "__name__", "__qualname__", "__doc__", "__version__", "__module__", "__file__", "__class__",
    "__annotations__", "__dataclass_fields__", "__match_args__", "__slots__", "__len__", "__iter__",
    "__next__", "__contains__", "__getitem__", "__repr__", "__str__", "__format__", "__hash__", "__bool__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__sub__", "__mul__",
    "__truediv__", "__floordiv__", "__mod__", "__pow__", "__neg__", "__pos__", "__abs__", "__and__",
    "__or__", "__xor__", "__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__enter__", "__exit__",
    "__array__", "__version_info__", "__author__", "__all__",
})
# Dunders that are fine on ``super()`` or called on the enclosing method's own ``self``/``cls``.
SUPER_DUNDERS = frozenset({"__init__", "__new__", "__init_subclass__", "__post_init__", "__setattr__",
                           "__getattr__", "__getattribute__", "__delattr__", "__setstate__", "__getstate__"})
# Dunder names (ast.Name) that are harmless to read.
SAFE_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__debug__", "__file__", "__qualname__", "__module__",
                               "__class__", "__version__", "__annotations__", "__all__"})

# Callables from these modules are denied however they are reached (a user's `from os import system`).
DANGEROUS_FUNCTION_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "ctypes", "_ctypes", "cffi", "importlib", "_imp", "sys",
    "socket", "_socket", "pty", "signal", "_signal", "multiprocessing", "marshal", "runpy", "code", "codeop",
    "inspect", "gc", "pdb", "webbrowser", "asyncio", "threading", "_thread", "pkgutil", "zipimport",
})
_DANGEROUS_BUILTINS = {id(getattr(builtins, n)): n for n in (
    "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "breakpoint", "input", "help")}

# -- what needs a person -------------------------------------------------------------------------

_PATH_KWS = ("path", "path_or_buf", "path_or_buffer", "filepath_or_buffer", "buf", "fname", "file", "filename",
             "excel_writer", "filepath", "where", "sink", "target", "file_name", "io", "source", "fp", "f",
             "uri", "dest", "destination", "table_path", "fileobj")

# name -> position of the path argument
READERS: dict[str, int] = {n: 0 for n in (
    "read_csv read_table read_fwf read_excel read_json read_parquet read_feather read_orc read_stata read_sas "
    "read_spss read_xml read_html read_ipc read_ipc_stream read_ipc_schema read_parquet_schema "
    "read_parquet_metadata read_avro read_ndjson read_delta read_iceberg scan_csv scan_parquet scan_ipc "
    "scan_ndjson scan_delta scan_iceberg loadtxt genfromtxt fromfile fromregex memmap loadmat whosmat "
    "imread mmread ExcelFile ParquetFile read_schema read_metadata open_input_file open_input_stream "
    "input_stream read_database_uri load_files load_svmlight_file load_svmlight_files readsav loadarff hb_read"
).split()}
# name -> (position of the path, position of the mode, the default mode): they write unless the mode reads
MODE_IO: dict[str, tuple[int, int, str]] = {"memmap": (0, 2, "r+"), "OSFile": (0, 1, "r"), "memory_map": (0, 1, "r"),
                                            "netcdf_file": (0, 1, "r"),
                                            "get_handle": (0, 1, "r"), "HDFStore": (0, 1, "a"), "FileIO": (0, 1, "r")}
SQL_READERS = frozenset({"read_sql", "read_sql_query", "read_sql_table", "read_database"})
SQL_STRINGS = frozenset({"sql", "execute"})  # polars SQL: table functions read files
UNPICKLERS: dict[str, int] = {"read_pickle": 0, "read_hdf": 0, "HDFStore": 0, "load_pickle": 0}
# name -> position of the target argument; no target means "return the data" (df.to_csv() is a string)
WRITERS: dict[str, int] = {n: 0 for n in (
    "to_csv to_excel to_json to_parquet to_feather to_pickle to_hdf to_stata to_html to_latex to_markdown "
    "to_xml to_orc to_string savefig imsave save savez savez_compressed savetxt tofile write_csv "
    "write_parquet write_json write_ndjson write_ipc write_ipc_stream write_avro write_excel write_delta "
    "write_iceberg write_html write_image write_svg write_pdf savemat mmwrite ExcelWriter dump_svmlight_file "
    "open_output_stream open_append_stream open_memmap output_stream create_memory_map sink_parquet sink_csv "
    "sink_ipc sink_ndjson write_database hb_write"
).split()}
WRITERS.update({"write_table": 1, "write_feather": 1, "write_dataset": 1, "write_to_dataset": 1})
# Writers that always write somewhere (a database), whatever their arguments.
DB_WRITERS = frozenset({"to_sql", "write_database", "to_gbq"})
# Generic names, judged only with a literal or Path argument, or when called on a module.
WEAK_IO: dict[str, tuple[str, int]] = {"load": ("read", 0), "read": ("read", 0), "open": ("read", 0),
                                       "dump": ("write", 1), "write": ("write", 0), "copy": ("write", 1),
                                       "copyfile": ("write", 1), "copy2": ("write", 1), "copytree": ("write", 1),
                                       "move": ("delete", 0), "remove": ("delete", 0), "rmtree": ("delete", 0),
                                       "removedirs": ("delete", 0), "delete_file": ("delete", 0),
                                       "delete_dir": ("delete", 0), "delete_dir_contents": ("delete", 0),
                                       "make_archive": ("write", 0), "unpack_archive": ("write", 1),
                                       "dataset": ("read", 0)}
PATH_METHODS: dict[str, str] = {
    "read_text": "read", "read_bytes": "read", "open": "read", "iterdir": "list", "glob": "list",
    "rglob": "list", "walk": "list", "write_text": "write", "write_bytes": "write", "touch": "write",
    "mkdir": "write", "symlink_to": "write", "hardlink_to": "write", "chmod": "write", "lchmod": "write",
    "unlink": "delete", "rmdir": "delete", "rename": "delete", "replace": "delete",
}
PROCESS_CALLS = {"to_clipboard": "uses the system clipboard through a subprocess",
                 "read_clipboard": "uses the system clipboard through a subprocess"}
NETWORK_CALLS = frozenset({"urlopen", "urlretrieve", "load_dataset", "get_rdataset", "webuse", "read_gbq", "to_gbq",
                           "S3FileSystem", "GcsFileSystem", "HadoopFileSystem", "AzureFileSystem", "from_uri",
                           "read_database_uri", "get_sample_data_url"})
NETWORK_MODULES = ("requests", "httpx", "urllib.request", "urllib3", "http.client", "aiohttp", "ftplib",
                   "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc", "websocket", "websockets",
                   "paramiko", "boto3", "botocore", "gcsfs", "s3fs", "fsspec", "pycurl")
UNPICKLE_MODULES = ("pickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve")
FILE_MODULES = ("shutil", "tempfile")
URL_SCHEMES = re.compile(r"^(https?|ftps?|s3a?|gs|gcs|az|abfss?|adl|hdfs|hf|sftp|ssh|ws|wss|git)://", re.I)

# In-place mutators, by the kind of object they are called on.
_LIST_MUT = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"}
_DICT_MUT = {"pop", "popitem", "clear", "update", "setdefault"}
_SET_MUT = {"add", "discard", "remove", "pop", "clear", "update", "difference_update", "intersection_update",
            "symmetric_difference_update"}
_DEQUE_MUT = _LIST_MUT | {"appendleft", "extendleft", "popleft", "rotate"}
_PANDAS_MUT = {"insert", "pop", "update", "set_flags_inplace"}
_NUMPY_MUT = {"sort", "fill", "resize", "put", "itemset", "setfield", "setflags", "partition"}
_ESTIMATOR_MUT = {"fit", "partial_fit", "set_params", "fit_transform", "fit_predict", "set_output"}
_GENERIC_MUT = (_LIST_MUT | _DICT_MUT | _SET_MUT | _DEQUE_MUT | _NUMPY_MUT | _ESTIMATOR_MUT) - {"partition"}
_ALL_MUT = _GENERIC_MUT | _PANDAS_MUT
# Functions that change their first argument in place.
ARG_MUTATORS = frozenset({"shuffle", "copyto", "put", "place", "putmask", "fill_diagonal", "heappush", "heappop",
                          "heapify", "heappushpop", "heapreplace", "insort", "insort_left", "insort_right",
                          "at", "setattr", "delattr"})

# Every call name with a rule of its own; other calls take the fast path.
_CALL_NAMES = frozenset(
    {"getattr", "hasattr", "setattr", "delattr", "open", "FileIO", "open_code", "super", "attrgetter", "methodcaller",
     "format", "format_map", "vformat", "get_field", "eval", "query", "apply", "agg", "aggregate", "transform", "pipe",
     "map", "applymap", "resample_apply", "HTML", "Markdown", "SVG", "display_html", "display_markdown",
     "display_svg", "display", "Latex", "Math", "HTMLMath", "load", "loads", "home", "cwd", "expanduser",
     "__getattribute__", "__getattr__", "__setattr__", "__delattr__", "ForwardRef", "TypeVar", "set_option", "use",
     "switch_backend"}
    | set(MODE_IO) | SQL_READERS | SQL_STRINGS
    | set(PROCESS_CALLS) | set(READERS) | set(WRITERS) | set(UNPICKLERS) | set(WEAK_IO) | set(PATH_METHODS)
    | NETWORK_CALLS | DB_WRITERS | ARG_MUTATORS | _ALL_MUT)

# I/O functions passed around as values, by what they do.
_REF_EFFECTS: dict[str, str] = {
    **{n: "computed_access" for n in READERS}, **{n: "computed_access" for n in MODE_IO},
    **{n: "write_files" for n in WRITERS}, **{n: "write_files" for n in DB_WRITERS},
    **{n: "unpickle" for n in UNPICKLERS}, **{n: "network" for n in NETWORK_CALLS},
    **{n: "deny" for n in PROCESS_CALLS}, "write_text": "write_files", "write_bytes": "write_files",
    "unlink": "delete_files", "rmdir": "delete_files", "rmtree": "delete_files", "open": "computed_access",
}
_REF_EFFECTS.pop("save", None)  # too generic a name to judge without a call
# Names (ast.Name) with a rule of their own.
_SPECIAL_NAMES = FORBIDDEN_BUILTINS | IPYTHON_NAMES | {"getattr", "setattr", "delattr", "hasattr"} | set(
    _REF_EFFECTS) | {
    n for n, why in FORBIDDEN_ATTRS.items() if why.startswith(("process, OS", "reading or", "active content",
                                                                 "IPython"))}

# Data the user may keep in plain sight: a loop reusing ``i`` is fine.
SHORT_STRING = 100
#: Objects bigger than this are not copied for undo (see ``undoable``).
UNDO_MAX_BYTES = 512 * 2**20

_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE", re.I)
_SECRET_FILES = re.compile(
    r"(^|/)(\.netrc|_netrc|\.pgpass|\.git-credentials|\.npmrc|\.pypirc|\.dockercfg|\.env(\.[^/]*)?|"
    r"credentials(\.json|\.db)?|id_(rsa|dsa|ecdsa|ed25519)(\.pub)?|[^/]*\.(pem|key|p12|pfx|keystore|jks)|"
    r"token|\.token|secrets?\.(json|ya?ml|toml|env)|service[-_]account[^/]*\.json|shadow|gshadow|"
    r"\.[a-z_]*history|history\.sqlite|\.lesshst|\.viminfo|\.Xauthority)$"
    r"|(^|/)(\.ssh|\.aws|\.gnupg|\.kube|\.docker|\.azure|\.oci|\.huggingface|\.config/gcloud|"
    r"\.config/gh|\.cache/huggingface|\.local/share/keyrings|\.password-store|\.local/share/jupyter/runtime|"
    r"\.ipython/profile_[^/]*/(history|security)|jupyter/runtime)(/|$)"
    r"|^/proc/(self|thread-self|\d+)(/|$)|^/proc/[^/]*/environ$|^/dev/(mem|kmem|port)$"
)
_PERSISTENCE_FILES = re.compile(
    r"(^|/)(\.bashrc|\.bash_profile|\.profile|\.zshrc|\.zprofile|\.login|\.cshrc|\.xinitrc|\.pythonrc(\.py)?|"
    r"sitecustomize\.py|usercustomize\.py|[^/]*\.pth|authorized_keys|crontab)$"
    r"|(^|/)(\.ipython|\.jupyter|\.config/autostart|\.config/systemd|\.git/hooks|site-packages|dist-packages|"
    r"\.local/lib|\.local/bin|\.ssh)(/|$)|^/etc/"
)
_ACTIVE_CONTENT = re.compile(
    r"<\s*/?\s*(script|iframe|frame|object|embed|applet|base|meta|link|portal)\b|<[^>]*?[\s/\"']on[a-z]+\s*=|"
    r"javascript\s*:|vbscript\s*:|data\s*:\s*text/html|srcdoc\s*=|application/(x-)?javascript|text/javascript",
    re.I,
)
# Text in a string literal that reaches interpreter internals: template injection (Jinja through
# DataFrame.style.env), string annotations that typing evaluates, query strings, format strings.
_CODE_IN_STRING = re.compile(
    r"__(globals|subclasses|builtins?|import|mro|bases?|code|closure|self|func|getattribute|loader|spec|"
    r"reduce|reduce_ex|traceback|init_subclass)__|\.__dict__|\b(f_globals|f_locals|f_back|f_builtins|tb_frame|"
    r"gi_frame|cr_frame|ag_frame|_getframe)\b|\|\s*attr\s*\(|_TemplateReference__context"
)
# Backends and plugins that are imported by name.
_KNOWN_BACKENDS = re.compile(r"^module://(matplotlib_inline\.backend_inline|ipympl\.backend_nbagg)$")
_PLOTTING_BACKENDS = {"matplotlib", "plotly", "hvplot", "holoviews", "pandas_bokeh", "altair"}
_MISSING = object()


# -- the policy ----------------------------------------------------------------------------------


@dataclass
class Policy:
    """What agent code may do: authorized imports, granted capabilities, where the notebook lives."""

    authorized_imports: list[str] = field(default_factory=lambda: list(DEFAULT_AUTHORIZED_IMPORTS))
    allow: frozenset[str] | set[str] | list[str] = frozenset()  # capabilities granted (CAPABILITIES)
    enabled: bool = True  # False: the guard is off (an explicit choice, for one cell)
    workdir: str | os.PathLike | None = None  # the notebook's folder; None: the current directory

    def __post_init__(self) -> None:
        self.allow = frozenset(self.allow)
        unknown = sorted(self.allow - CAPABILITIES.keys())
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}")

    def granted(self, capability: str) -> bool:
        return capability in self.allow

    def with_grants(self, *capabilities: str, imports: Iterable[str] = ()) -> "Policy":
        """A copy with more capabilities and imports (a cell's ``--allow`` and ``--imports``)."""
        extra = [m for m in imports if m not in self.authorized_imports]
        return replace(self, allow=frozenset(self.allow) | set(capabilities),
                       authorized_imports=list(self.authorized_imports) + extra)

    def root(self) -> str:
        return os.path.realpath(os.fspath(self.workdir) if self.workdir is not None else os.getcwd())

    def module_forbidden(self, module: str) -> bool:
        return module_forbidden(module)

    def import_allowed(self, module: str) -> bool:
        if module_forbidden(module):
            return False
        for pattern in self.authorized_imports:
            if pattern == "*" or module == pattern or module.startswith(pattern + "."):
                return True
            if pattern.endswith(".*") and (module == pattern[:-2] or module.startswith(pattern[:-1])):
                return True
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(module, pattern):
                return True
        return False


def module_forbidden(module: str) -> bool:
    if any(module == a or module.startswith(a + ".") for a in ALLOWED_UNDER_FORBIDDEN):
        return False
    if module.split(".")[0] in FORBIDDEN_MODULES:
        return True
    return any(module == s or module.startswith(s + ".") for s in FORBIDDEN_SUBMODULES)


@dataclass
class GuardContext:
    """The live state an action is judged against.

    ``namespace``: the namespace the code will run in (``shell.user_ns``).
    ``agent_names``: names agent runs created; they are free to rebind and change.
    ``protected``: names protected explicitly (``--protect a,b``), whatever they hold.
    ``hidden``: names that are not the user's data (IPython internals, the agent's tools);
    rebinding one of them is denied.
    ``can_undo``: ``value -> (bool, why)``: whether undo can restore an in-place change of
    ``value``; defaults to ``undoable``. Pass the undo system's own predicate.
    """

    namespace: Mapping[str, Any] = field(default_factory=dict)
    agent_names: Container[str] = frozenset()
    protected: Container[str] = frozenset()
    hidden: Container[str] = frozenset()
    can_undo: Callable[[Any], tuple[bool, str]] | None = None


@dataclass
class Finding:
    """One thing the guard found: a decision, what it is, and what would allow it."""

    decision: str  # allow | ask | deny
    message: str  # what the code does
    line: int | None = None
    capability: str | None = None  # for ask: the capability that turns it into allow (None: only a person)
    instead: str = ""  # what to do instead
    irreversible: bool = False  # an in-place change that undo cannot restore
    granted: bool = False  # an ask turned into allow by a granted capability
    note: str = ""  # replaces the standard tail of a deny ("never allowed") when the user can change it

    @property
    def text(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        if self.decision == "deny" and self.note:
            tail = f" {self.note}"
        elif self.decision == "deny":
            tail = " It is never allowed, whoever approves."
        elif self.granted:
            tail = f" Allowed: '{self.capability}' is granted."
        elif self.decision == "ask" and self.capability is None:
            tail = " Needs a person's approval (no capability grants it)."
        elif self.decision == "ask":
            tail = f" Needs a person's approval (or grant '{self.capability}' to allow)."
        else:
            tail = ""
        instead = f" Instead: {self.instead}" if self.instead and not self.granted else ""
        return f"{where}{self.message.rstrip('.')}.{tail}{instead}"


class GuardVerdict(Verdict):
    """A ``Verdict`` plus structured findings (not serialised: ``to_dict`` keeps decision and reasons)."""

    findings: list[Finding]

    def __init__(self, decision: str, reasons: list[str], findings: Iterable[Finding] = ()):
        super().__init__(decision, reasons)
        self.findings = list(findings)

    @property
    def capabilities(self) -> list[str]:
        """The capabilities that would turn this ``ask`` into ``allow`` (empty for deny)."""
        if self.decision == "deny":
            return []
        return sorted({f.capability for f in self.findings if f.decision == "ask" and not f.granted and f.capability})

    @property
    def irreversible(self) -> bool:
        """True when the action changes an object in place and undo cannot restore it."""
        return any(f.irreversible for f in self.findings)


# -- the entry point ------------------------------------------------------------------------------


def check(code: str, policy: Policy | None = None, context: GuardContext | None = None,
          tree: ast.Module | None = None) -> GuardVerdict:
    """Judge one action before it runs: allow, ask or deny, with reasons.

    Without ``context`` the user's data is not judged (no namespace to judge it against).
    ``tree``: ``ast.parse(code)`` if the caller has it already (the guard does not change it).
    """
    policy = policy or Policy()
    if not policy.enabled:
        return GuardVerdict("allow", ["the guard is off for this cell: nothing was checked"])
    try:
        tree = tree if tree is not None else ast.parse(code)
    except SyntaxError as exc:
        finding = _ipython_escape(code) or Finding(
            "deny", f"the code does not parse: {exc.msg}", exc.lineno,
            instead="write valid Python (no shell commands or magics)")
        return _verdict([finding], policy)
    except (ValueError, RecursionError, MemoryError) as exc:
        return _verdict([Finding("deny", f"the code cannot be parsed: {exc}", instead="write simpler code")],
                        policy)
    guard = _Guard(policy, context)
    try:
        guard.run(tree)
    except RecursionError:
        guard.deny(None, "the code is nested too deeply to be checked", "write flatter code")
    except Exception as exc:  # noqa: BLE001 - fail closed: code the guard could not check does not run
        guard.deny(None, f"the guard could not check this code ({type(exc).__name__}: {exc})",
                   "write simpler code")
    return _verdict(guard.findings, policy)


def _verdict(findings: list[Finding], policy: Policy) -> GuardVerdict:
    unique: dict[str, Finding] = {}
    for f in findings:
        if f.decision == "ask" and f.capability and policy.granted(f.capability):
            f.granted = True
        unique.setdefault(f.text, f)
    findings = list(unique.values())
    if len(findings) > 12:  # a long list helps no one; the first ones say what to fix
        order = {"deny": 0, "ask": 1, "allow": 2}
        findings.sort(key=lambda f: (order[f.decision], f.line if f.line is not None else 10**9))
        more = len(findings) - 12
        findings = findings[:12] + [Finding(findings[12].decision if findings[0].decision != "deny" else "deny",
                                            f"... and {more} more findings of the same kinds")]
    if any(f.decision == "deny" for f in findings):
        decision = "deny"
    elif any(f.decision == "ask" and not f.granted for f in findings):
        decision = "ask"
    else:
        decision = "allow"
    order = {"deny": 0, "ask": 1, "allow": 2}
    findings.sort(key=lambda f: (order[f.decision] + f.granted, f.line if f.line is not None else 10**9))
    return GuardVerdict(decision, [f.text for f in findings], findings)


def _ipython_escape(code: str) -> Finding | None:
    for number, line in enumerate(code.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("!") or re.match(r"^\w+\s*=\s*!", stripped):
            return Finding("deny", f"shell commands are not allowed in agent code: {stripped[:60]!r}", number,
                           instead="use Python functions of the authorized modules")
        if stripped.startswith("%") or re.match(r"^\w+\s*=\s*%", stripped):
            return Finding("deny", f"IPython magics are not allowed in agent code: {stripped[:60]!r}", number,
                           instead="write plain Python")
        if re.match(r"^[\w.]+\?\??\s*$", stripped) or stripped.startswith("?"):
            return Finding("deny", f"IPython help syntax is not allowed in agent code: {stripped[:60]!r}",
                           number, instead="write plain Python")
    return None


# -- the checker ----------------------------------------------------------------------------------


@dataclass
class _Scope:
    kind: str  # module | function | class | comprehension
    locals: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    self_name: str | None = None  # a method's first parameter
    node: ast.AST | None = None


class _Binder:
    """First pass: what each name is bound to in the code, and the local names of each scope."""

    def __init__(self) -> None:
        self.bindings: dict[tuple[int, str], list[tuple]] = {}  # (id of the scope node, name) -> values
        self.names: set[str] = set()  # every name the code binds, anywhere
        self.aliases: list[tuple] = []  # x = obj.attr: attributes bound to a name (judged where the name is called)
        self.scope_locals: dict[int, set[str]] = {}
        self.scope_globals: dict[int, set[str]] = {}

    def bind(self, name: str, value: tuple, scope: ast.AST) -> None:
        self.bindings.setdefault((id(scope), name), []).append(value)
        self.names.add(name)
        self.scope_locals.setdefault(id(scope), set()).add(name)

    def target(self, target: ast.AST, value: tuple, scope: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value, scope)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.target(elt, ("unknown",), scope)
        elif isinstance(target, ast.Starred):
            self.target(target.value, ("unknown",), scope)

    def statements(self, body: list[ast.stmt], scope: ast.AST) -> None:
        for stmt in body:
            self.statement(stmt, scope)

    def statement(self, stmt: ast.stmt, scope: ast.AST) -> None:  # noqa: C901 - a dispatch table
        t = type(stmt)
        if t is ast.Assign:
            for target in stmt.targets:
                self.target(target, ("expr", stmt.value), scope)
            if isinstance(stmt.value, ast.Attribute):
                self.aliases.append(("expr", stmt.value))
        elif t is ast.AnnAssign:
            if stmt.value is not None:
                self.target(stmt.target, ("expr", stmt.value), scope)
            elif isinstance(stmt.target, ast.Name):
                self.scope_locals.setdefault(id(scope), set()).add(stmt.target.id)
        elif t is ast.AugAssign:
            self.target(stmt.target, ("unknown",), scope)
        elif t in (ast.For, ast.AsyncFor):
            if isinstance(stmt.target, ast.Name):
                self.bind(stmt.target.id, ("iter", stmt.iter), scope)
            else:
                self.target(stmt.target, ("unknown",), scope)
        elif t in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.target(item.optional_vars, ("with", item.context_expr), scope)
        elif t is ast.Import:
            for alias in stmt.names:
                if alias.asname:
                    self.bind(alias.asname, ("import", alias.name), scope)
                else:
                    root = alias.name.split(".")[0]
                    self.bind(root, ("import", root), scope)
        elif t is ast.ImportFrom:
            if stmt.module and not stmt.level:
                for alias in stmt.names:
                    if alias.name != "*":
                        self.bind(alias.asname or alias.name, ("from", stmt.module, alias.name), scope)
        elif t in (ast.FunctionDef, ast.AsyncFunctionDef):
            self.bind(stmt.name, ("def", stmt), scope)
            args = stmt.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None:
                    self.bind(arg.arg, ("param",), stmt)
            self.scope_locals.setdefault(id(stmt), set())
            self.statements(stmt.body, stmt)
        elif t is ast.ClassDef:
            self.bind(stmt.name, ("class", stmt), scope)
            self.scope_locals.setdefault(id(stmt), set())
            self.statements(stmt.body, stmt)
        elif t in (ast.Global, ast.Nonlocal):
            self.scope_globals.setdefault(id(scope), set()).update(stmt.names)
        elif t is ast.Try or t.__name__ == "TryStar":
            self.statements(stmt.body, scope)
            for handler in stmt.handlers:
                if handler.name:
                    self.bind(handler.name, ("unknown",), scope)
                self.statements(handler.body, scope)
            self.statements(stmt.orelse, scope)
            self.statements(stmt.finalbody, scope)
        elif t in (ast.If, ast.While):
            self.statements(stmt.body, scope)
            self.statements(stmt.orelse, scope)
        elif t is ast.Match:
            for case in stmt.cases:
                for sub in ast.walk(case.pattern):
                    name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                    if isinstance(name, str):
                        self.bind(name, ("unknown",), scope)
                self.statements(case.body, scope)
        if t in (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith):
            self.statements(stmt.body, scope)
            self.statements(getattr(stmt, "orelse", []), scope)


@dataclass
class _Ref:
    """What an expression denotes, when the guard can tell: a module, or a live object."""

    kind: str  # module | object
    name: str = ""  # dotted module name, or the origin "module.attr" of an imported name
    obj: Any = _MISSING


class _Guard:
    def __init__(self, policy: Policy, context: GuardContext | None):
        self.policy = policy
        self.context = context
        self.ns: Mapping[str, Any] = context.namespace if context is not None else {}
        self.findings: list[Finding] = []
        self.scopes: list[_Scope] = []
        self.comp_iters: list[dict[str, ast.expr]] = []
        self.functions: dict[str, tuple[ast.AST, list[str]]] = {}  # functions the code defines, by name
        self._mutated_params: dict[str, set[int]] = {}
        self._ref_cache: dict[int, _Ref | None] = {}
        self._protected_cache: dict[str, tuple[bool, str]] = {}
        self._root: str | None = None
        self._imports: dict[str, bool] = {}
        self._effect_modules: dict[str, bool] = {}
        self._ns_checked: set[str] = set()
        self._call_of: dict[int, ast.Call] = {}  # id(func node) -> the call it is the function of
        self._next_attr: dict[int, str] = {}  # id(node) -> the attribute read from it (x.__class__.__name__)
        self._dispatch = {
            ast.Name: self.v_name, ast.Attribute: self.v_attribute, ast.Call: self.v_call,
            ast.Constant: self.v_constant, ast.Import: self.v_import, ast.ImportFrom: self.v_import_from,
            ast.Assign: self.v_assign, ast.AugAssign: self.v_augassign, ast.AnnAssign: self.v_annassign,
            ast.Delete: self.v_delete, ast.For: self.v_for, ast.AsyncFor: self.v_for, ast.With: self.v_with,
            ast.AsyncWith: self.v_with, ast.NamedExpr: self.v_namedexpr, ast.FunctionDef: self.v_function,
            ast.AsyncFunctionDef: self.v_function, ast.Lambda: self.v_lambda, ast.ClassDef: self.v_class,
            ast.ListComp: self.v_comp, ast.SetComp: self.v_comp, ast.GeneratorExp: self.v_comp,
            ast.DictComp: self.v_comp, ast.Await: self.v_await, ast.ExceptHandler: self.v_handler,
            ast.Match: self.v_match, ast.JoinedStr: self.v_joinedstr, ast.Global: self.v_global,
            ast.Subscript: self.v_subscript, ast.Load: _noop, ast.Store: _noop, ast.Del: _noop,
            ast.BinOp: self.v_binop, ast.Compare: self.v_compare, ast.Expr: self.v_expr, ast.Pass: _noop,
            ast.Break: _noop, ast.Continue: _noop, ast.Nonlocal: _noop,
        }

    # -- plumbing -------------------------------------------------------------

    def run(self, tree: ast.Module) -> None:
        binder = _Binder()
        binder.statements(tree.body, tree)
        self.binder = binder
        self.bindings = binder.names  # membership: is the name bound anywhere in the code
        self.scopes.append(_Scope("module", node=tree))
        for stmt in tree.body:
            self.visit(stmt)

    def visit(self, node: ast.AST) -> None:
        t = type(node)
        if t is ast.Name:  # the commonest nodes, inline: a plain name read, a number
            if type(node.ctx) is ast.Load:
                name = node.id
                if name in _SPECIAL_NAMES or name[:1] == "_" or name in self.ns:
                    self.check_name_load(node, name)
                return
        elif t is ast.Constant:
            if type(node.value) is str:
                self.v_constant(node)
            return
        method = self._dispatch.get(t)
        if method is None:
            self.generic(node)
        else:
            method(node)

    def v_binop(self, node: ast.BinOp) -> None:
        self.visit(node.left)
        self.visit(node.right)

    def v_compare(self, node: ast.Compare) -> None:
        self.visit(node.left)
        for comparator in node.comparators:
            self.visit(comparator)

    def v_expr(self, node: ast.Expr) -> None:
        self.visit(node.value)

    def generic(self, node: ast.AST) -> None:
        cls = type(node)
        fields = _CHILD_FIELDS.get(cls)
        if fields is None:
            fields = _CHILD_FIELDS[cls] = tuple(f for f in cls._fields if f not in _LEAF_FIELDS)
        visit = self.visit
        for name in fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item)
            elif isinstance(value, ast.AST):
                visit(value)

    def add(self, node: ast.AST | None, decision: str, message: str, capability: str | None = None,
            instead: str = "", irreversible: bool = False) -> None:
        line = getattr(node, "lineno", None) if node is not None else None
        self.findings.append(Finding(decision, message, line, capability, instead, irreversible))

    def deny(self, node: ast.AST | None, message: str, instead: str = "") -> None:
        self.add(node, "deny", message, instead=instead)

    def ask(self, node: ast.AST | None, message: str, capability: str | None, instead: str = "",
            irreversible: bool = False) -> None:
        self.add(node, "ask", message, capability, instead, irreversible)

    def import_allowed(self, module: str) -> bool:
        got = self._imports.get(module)
        if got is None:
            got = self._imports[module] = self.policy.import_allowed(module)
        return got

    @property
    def root_dir(self) -> str:
        if self._root is None:
            self._root = self.policy.root()
        return self._root

    def snippet(self, node: ast.AST, limit: int = 60) -> str:
        try:
            text = ast.unparse(node)
        except Exception:  # noqa: BLE001 - only for messages
            return "this expression"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    # -- scopes ------------------------------------------------------------------

    @property
    def scope(self) -> _Scope:
        return self.scopes[-1]

    def binds_module_name(self, name: str) -> bool:
        """Does storing ``name`` here bind it in the user's namespace?"""
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                continue  # only walrus targets reach here: they bind in the enclosing scope
            if scope.kind == "module":
                return True
            if scope.kind == "function":
                return name in scope.globals
            return False  # class body
        return True

    def is_local(self, name: str) -> bool:
        """Is ``name`` a local variable (parameter or assigned) of an enclosing function or comprehension?"""
        for scope in reversed(self.scopes):
            if name in scope.globals:
                return False
            if scope.kind in ("function", "comprehension") and name in scope.locals:
                return True
        return False

    # -- resolution -------------------------------------------------------------

    def code_bindings(self, name: str) -> list[tuple] | None:
        """What ``name`` is bound to by the code, in the scope being checked (None: not bound by the code)."""
        for iters in reversed(self.comp_iters):
            if name in iters:
                return [("iter", iters[name])]
        innermost = True
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                continue
            if name in scope.globals or scope.kind == "module":
                break
            if scope.kind == "class" and not innermost:
                continue
            innermost = False
            got = self.binder.bindings.get((id(scope.node), name))
            if got is not None:
                return got
            if name in scope.locals:
                return [("unknown",)]
        return self.binder.bindings.get((id(self.scopes[0].node), name))

    def ref(self, node: ast.AST, depth: int = 0) -> _Ref | None:
        """What a Name/Attribute chain denotes when it is a module or an object reached through modules."""
        key = id(node)
        if key in self._ref_cache:
            return self._ref_cache[key]
        result = self._ref(node, depth)
        self._ref_cache[key] = result
        return result

    def _ref(self, node: ast.AST, depth: int) -> _Ref | None:
        if depth > 8:
            return None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is not None:
                for value in bound:
                    if value[0] == "import":
                        return _Ref("module", value[1], sys.modules.get(value[1], _MISSING))
                    if value[0] == "from":
                        return self._from_ref(value[1], value[2])
                    if value[0] == "expr" and isinstance(value[1], (ast.Name, ast.Attribute)):
                        inner = self.ref(value[1], depth + 1)
                        if inner is not None:
                            return inner
                return None
            value = self.ns.get(node.id, _MISSING)
            if value is _MISSING:
                value = getattr(builtins, node.id, _MISSING)
                return _Ref("object", "builtins." + node.id, value) if value is not _MISSING else None
            if isinstance(value, types.ModuleType):
                return _Ref("module", _str_attr(value, "__name__") or node.id, value)
            return _Ref("object", _origin(value), value)
        if isinstance(node, ast.Attribute):
            base = self.ref(node.value, depth + 1)
            if base is None or base.kind != "module":
                return None
            return _attr_ref(base, node.attr)
        return None

    def _from_ref(self, module: str, name: str) -> _Ref:
        mod = sys.modules.get(module)
        if mod is None:
            return _Ref("module" if _is_submodule(module, name) else "object", f"{module}.{name}")
        return _attr_ref(_Ref("module", module, mod), name)

    def values(self, node: ast.AST, depth: int = 0) -> set | None:
        """Constant folding: the set of values an expression can have, or None."""
        if depth > 10:
            return None
        t = type(node)
        if t is ast.Constant:
            return {node.value}
        if t is ast.Name:
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, (str, int, float, bool)) or value is None:
                    return {value}
                if isinstance(value, PurePath):
                    return {str(value)}
                return None
            out: set = set()
            for value in bound:
                if value[0] == "expr":
                    got = self.values(value[1], depth + 1)
                elif value[0] == "iter":
                    got = self.elements(value[1], depth + 1)
                else:
                    got = None
                if got is None:
                    return None
                out |= got
            return out if len(out) <= 64 else None
        if t is ast.JoinedStr:
            parts: list[set] = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append({str(part.value)})
                    continue
                got = self.values(part.value, depth + 1)
                spec = self.values(part.format_spec, depth + 1) if part.format_spec is not None else {""}
                if got is None or spec is None or any(re.search(r"\d{4}", str(sp)) for sp in spec):
                    return None
                try:
                    parts.append({format(repr(v) if part.conversion == 114 else str(v) if part.conversion == 115
                                         else ascii(v) if part.conversion == 97 else v, s)
                                  for v in got for s in spec})
                except (ValueError, TypeError):
                    return None
            return _product(parts)
        if t is ast.BinOp:
            left, right = self.values(node.left, depth + 1), self.values(node.right, depth + 1)
            if left is None or right is None or len(left) * len(right) > 64:
                return None
            try:
                if isinstance(node.op, ast.Add):
                    return {a + b for a in left for b in right}
                if isinstance(node.op, ast.Mult):
                    for a in left:
                        for b in right:
                            size = len(a) * b if isinstance(a, str) and isinstance(b, int) else \
                                len(b) * a if isinstance(b, str) and isinstance(a, int) else 0
                            if size > 10_000 or (isinstance(a, int) and isinstance(b, int) and
                                                 max(abs(a), abs(b)) > 10**9):
                                return None  # folding must not build huge values
                    return {a * b for a in left for b in right}
                if isinstance(node.op, ast.Mod) and all(isinstance(a, str) for a in left):
                    return {a % b for a in left for b in right}
            except (TypeError, ValueError, OverflowError, MemoryError):
                return None
            return None
        if t is ast.UnaryOp and isinstance(node.op, (ast.USub, ast.UAdd)):
            got = self.values(node.operand, depth + 1)
            if got is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got):
                return None
            return {-v for v in got} if isinstance(node.op, ast.USub) else got
        if t is ast.IfExp:
            a, b = self.values(node.body, depth + 1), self.values(node.orelse, depth + 1)
            return None if a is None or b is None else a | b
        if t is ast.Subscript:
            base = self.values(node.value, depth + 1)
            if base is None or not all(isinstance(b, str) for b in base):
                return None
            index = node.slice
            try:
                if isinstance(index, ast.Slice):
                    bounds = []
                    for part in (index.lower, index.upper, index.step):
                        if part is None:
                            bounds.append(None)
                            continue
                        got = self.values(part, depth + 1)
                        if got is None or len(got) != 1:
                            return None
                        bounds.append(next(iter(got)))
                    lo, hi, st = bounds
                    return {s[lo:hi:st] for s in base}
                idx = self.values(index, depth + 1)
                if idx is None:
                    return None
                return {s[i] for s in base for i in idx}
            except (TypeError, ValueError, IndexError):
                return None
        if t is ast.Call:
            return self.call_values(node, depth)
        return None

    def call_values(self, node: ast.Call, depth: int) -> set | None:
        func = node.func
        if node.keywords:
            return None
        if isinstance(func, ast.Name) and func.id in ("chr", "str") and func.id not in self.bindings:
            if len(node.args) != 1:
                return {""} if func.id == "str" and not node.args else None
            arg = self.values(node.args[0], depth + 1)
            if arg is None:
                return None
            try:
                return {chr(a) for a in arg} if func.id == "chr" else {str(a) for a in arg}
            except (TypeError, ValueError, OverflowError):
                return None
        if isinstance(func, ast.Attribute):
            base = self.values(func.value, depth + 1)
            if base is None or not all(isinstance(b, str) for b in base):
                return None
            if func.attr == "join" and len(node.args) == 1:
                items = self.elements(node.args[0], depth + 1, ordered=True)
                if items is None:
                    return None
                return {b.join(map(str, seq)) for b in base for seq in items}
            if func.attr in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "casefold",
                             "replace", "removeprefix", "removesuffix", "swapcase"):
                args = [self.values(a, depth + 1) for a in node.args]
                if any(a is None for a in args):
                    return None
                out = set()
                try:
                    for b in base:
                        for combo in itertools.product(*args):
                            out.add(getattr(b, func.attr)(*combo))
                except (TypeError, ValueError, AttributeError, IndexError, KeyError):
                    return None
                return out if len(out) <= 64 else None
        return None

    def elements(self, node: ast.AST, depth: int = 0, ordered: bool = False) -> set | None:
        """The values of the elements of a literal collection (or with ``ordered``, the sequences)."""
        if depth > 10:
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            parts = []
            for elt in node.elts:
                got = self.values(elt, depth + 1)
                if got is None:
                    return None
                parts.append(got)
            if ordered:
                combos = 1
                for p in parts:
                    combos *= len(p)
                if combos > 64:
                    return None
                return set(itertools.product(*parts))
            return set().union(*parts) if parts else set()
        if isinstance(node, ast.Dict) and not ordered:
            return self.elements(ast.Tuple(elts=[k for k in node.keys if k is not None]), depth + 1)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and ordered:
            return None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, (list, tuple, set, frozenset)) and len(value) <= 64 and all(
                        isinstance(v, (str, int, float)) for v in value):
                    return {tuple(value)} if ordered else set(value)
                return None
            out: set = set()
            for value in bound:
                if value[0] != "expr":
                    return None
                got = self.elements(value[1], depth + 1, ordered)
                if got is None:
                    return None
                out |= got
            return out
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "keys", "values", "items") and not ordered:
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" and not ordered:
            args = [self.values(a, depth + 1) for a in node.args]
            if all(a is not None and len(a) == 1 and isinstance(next(iter(a)), int) for a in args) and args:
                rng = range(*(next(iter(a)) for a in args))
                return set(rng) if len(rng) <= 64 else {rng.start}
        return None

    # -- paths ---------------------------------------------------------------------

    def path_kind(self, node: ast.AST, depth: int = 0) -> str | None:
        """'path' (a pathlib object), 'buffer' (in-memory), 'file' (an open file) or None."""
        if depth > 8:
            return None
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name in ("StringIO", "BytesIO"):
                return "buffer"
            if name in _PATH_CLASSES:
                return "path"
            if name in _PATH_RETURNING and isinstance(node.func, ast.Attribute):
                inner = node.func.value  # Path.home(), p.with_suffix('.csv'), (p / 'x').resolve()
                if _callee_name(inner) in _PATH_CLASSES and not isinstance(inner, ast.Call) or \
                        self.path_kind(inner, depth + 1) == "path":
                    return "path"
                return None
            if name == "open":
                return "file"
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return "path" if self.path_kind(node.left, depth + 1) == "path" else None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            return "path" if self.path_kind(node.value, depth + 1) == "path" else None
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                value = self.ns.get(node.id, _MISSING)
                if isinstance(value, PurePath):
                    return "path"
                if isinstance(value, (io.StringIO, io.BytesIO)):
                    return "buffer"
                if isinstance(value, io.IOBase):
                    return "file"
                return None
            kinds = set()
            for value in bound:
                if value[0] == "expr":
                    kinds.add(self.path_kind(value[1], depth + 1))
                elif value[0] == "with":
                    kinds.add(self.path_kind(value[1], depth + 1))
                elif value[0] == "iter":
                    it = value[1]
                    if isinstance(it, ast.Call) and _callee_name(it.func) in ("glob", "rglob", "iterdir") and \
                            isinstance(it.func, ast.Attribute) and self.path_kind(it.func.value, depth + 1) == "path":
                        kinds.add("path")
                    else:
                        kinds.add(None)
                else:
                    kinds.add(None)
            return kinds.pop() if len(kinds) == 1 else None
        return None

    def paths(self, node: ast.AST, depth: int = 0) -> set[str] | None:
        """The paths an expression can name, as strings ('~' for the home directory), or None."""
        if depth > 8:
            return None
        vals = self.values(node, depth + 1)
        if vals is not None:
            return {v for v in vals if isinstance(v, str)} if all(isinstance(v, (str, PurePath)) for v in vals) \
                else None
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name in _PATH_CLASSES and not node.keywords:
                if not node.args:
                    return {"."}
                parts = [self.paths(a, depth + 1) for a in node.args]
                if any(p is None for p in parts):
                    return None
                return {os.path.join(*combo) for combo in itertools.product(*parts)}
            if name == "str" and len(node.args) == 1:
                return self.paths(node.args[0], depth + 1)
            if isinstance(node.func, ast.Attribute):
                inner = node.func.value
                if name == "home":
                    return {"~"}
                if name == "cwd":
                    return {self.root_dir}
                if name in ("expanduser", "resolve", "absolute"):
                    return self.paths(inner, depth + 1)
                if name == "joinpath":
                    base = self.paths(inner, depth + 1)
                    parts = [self.paths(a, depth + 1) for a in node.args]
                    if base is None or any(p is None for p in parts):
                        return None
                    return {os.path.join(b, *combo) for b in base for combo in itertools.product(*parts)}
                if name in ("with_suffix", "with_name", "with_stem") and len(node.args) == 1:
                    base, arg = self.paths(inner, depth + 1), self.values(node.args[0], depth + 1)
                    if base is None or arg is None:
                        return None
                    try:
                        return {str(getattr(PurePath(b), name)(a)) for b in base for a in arg}
                    except (ValueError, TypeError):
                        return None
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self.paths(node.left, depth + 1), self.paths(node.right, depth + 1)
            if left is None or right is None:
                return None
            return {os.path.join(a, b) for a in left for b in right}
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = self.paths(node.value, depth + 1)
            return None if inner is None else {os.path.dirname(p.rstrip("/")) or "." for p in inner}
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                return None
            out: set[str] = set()
            for value in bound:
                if value[0] == "expr":
                    got = self.paths(value[1], depth + 1)
                elif value[0] == "iter":
                    got = self.iter_paths(value[1], depth + 1)
                else:
                    got = None
                if got is None:
                    return None
                out |= got
            return out
        return None

    def iter_paths(self, node: ast.AST, depth: int) -> set[str] | None:
        """Paths produced by iterating ``node``: a literal list, or a glob of a known folder."""
        got = self.elements(node, depth + 1)
        if got is not None:
            return {v for v in got if isinstance(v, str)} if all(isinstance(v, str) for v in got) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "glob", "rglob", "iterdir"):
            base = self.paths(node.func.value, depth + 1)
            pattern = self.values(node.args[0], depth + 1) if node.args else {""}
            if base is None or pattern is None or any(".." in str(p) or str(p).startswith("/") for p in pattern):
                return None
            return {os.path.join(b, "<entry>") for b in base}
        return None

    # -- visitors: names and attributes -----------------------------------------

    def v_name(self, node: ast.Name) -> None:
        name = node.id
        if isinstance(node.ctx, ast.Load):
            self.check_name_load(node, name)
        else:
            if name.startswith("__") and name.endswith("__") and len(name) > 4:
                allowed = self.scope.kind == "class" or name in ("__all__", "__version__", "__doc__", "__author__")
                if not allowed or name in ("__builtins__", "__class__", "__dict__", "__globals__"):
                    self.deny(node, f"assigning the dunder name {name!r} is not allowed",
                              "use an ordinary variable name")
            self.store_name(node, name, node, delete=isinstance(node.ctx, ast.Del))

    def check_name_load(self, node: ast.AST, name: str) -> None:
        if name in _SPECIAL_NAMES or name[:1] == "_":
            self.check_special_name(node, name)
        elif name in self.ns and name not in self.bindings and name not in self._ns_checked:
            self._ns_checked.add(name)
            ref = self.ref(node)
            if ref is not None:
                self.check_ref(node, ref, name)

    def io_reference(self, node: ast.AST, name: str) -> None:
        """An I/O function passed around as a value (map(pd.read_csv, files), partial(df.to_csv, p)):
        its arguments cannot be seen, so it is judged by what it does."""
        if any(v[0] == "expr" and isinstance(v[1], ast.Attribute) and v[1] is node
               for v in self.binder.aliases):
            return  # f = df.to_csv: judged where f is called
        effect = _REF_EFFECTS[name]
        shown = f"{name} is passed around as a value, so its arguments cannot be checked"
        if effect == "deny":
            self.deny(node, f"{shown}; {PROCESS_CALLS.get(name, 'it is not allowed')}", "do not use it")
        else:
            self.ask(node, shown, effect, f"call {name}(...) directly with a literal path")

    def check_special_name(self, node: ast.AST, name: str) -> None:
        if name in FORBIDDEN_BUILTINS and name not in self.bindings and _is_builtin_here(self.ns, name):
            self.deny(node, f"{name!r} is not allowed in agent code (it runs or inspects code dynamically)",
                      "write the code directly, without eval/exec/compile/globals/vars")
            return
        if name in IPYTHON_NAMES or _IPYTHON_INPUT.match(name):
            self.deny(node, f"{name!r} is IPython's own object and is not allowed in agent code",
                      "write plain Python; the shell, its history and magics are off limits")
            return
        if name.startswith("__") and name.endswith("__") and len(name) > 4 and name not in SAFE_DUNDER_NAMES:
            self.deny(node, f"the dunder name {name!r} is not allowed", "use public names")
            return
        if name in FORBIDDEN_ATTRS and name in _SPECIAL_NAMES and name not in self.bindings and (
                not _is_data(self.ns, name) or isinstance(self.ns.get(name), os._Environ)):
            self.deny(node, f"{name!r} ({FORBIDDEN_ATTRS[name]}) is not allowed in agent code",
                      "use the authorized modules")
            return
        if name in _REF_EFFECTS:
            if id(node) not in self._call_of:
                bound = self.code_bindings(name)
                origins = [v[2] for v in bound or () if v[0] == "from"]
                if bound is None and name == "open" and _is_builtin_here(self.ns, name):
                    self.io_reference(node, "open")
                elif origins and origins[0] in _REF_EFFECTS:
                    self.io_reference(node, origins[0])
            return
        if name in ("getattr", "setattr", "delattr", "hasattr") and name not in self.bindings:
            parent_call = id(node) in self._call_of
            if not parent_call and self.assembles_dunder():
                self.deny(node, f"{name} is passed around as a value in code that builds dunder names",
                          "call getattr(obj, 'literal_name') directly")
            elif not parent_call:
                self.ask(node, f"{name} is passed around as a value, so the attribute names it will use cannot be "
                               "checked", "computed_access", "call getattr(obj, 'literal_name') directly")
            return
        if name not in self.bindings and name in self.ns:
            ref = self.ref(node)
            if ref is not None:
                self.check_ref(node, ref, name)

    def check_ref(self, node: ast.AST, ref: _Ref, shown: str) -> None:
        """A name or chain reaches a module or an object: is it one agent code may use?"""
        if ref.kind == "module":
            if module_forbidden(ref.name):
                self.deny(node, f"{shown} reaches the module {ref.name!r}, which is forbidden "
                                "(process, OS or interpreter access)", "use the authorized modules")
            elif not self.import_allowed(ref.name):
                self.deny(node, f"{shown} reaches the module {ref.name!r}, which is not authorized",
                          "use the authorized modules")
                self.findings[-1].note = "It does not run; the user can authorize the module (--imports)."
            return
        obj = ref.obj
        if isinstance(obj, os._Environ):
            self.deny(node, f"{shown} is the process environment (it holds credentials)",
                      "credentials are not available to agent code; ask the user for what you need")
            return
        if obj is _MISSING or not callable(obj):
            return
        name = _DANGEROUS_BUILTINS.get(id(obj))
        if name is not None and obj is getattr(builtins, name, None):
            self.deny(node, f"{shown} is the builtin {name}(), which is not allowed in agent code",
                      "write the code directly")
            return
        module = _str_attr(obj, "__module__")
        own_name = _str_attr(obj, "__name__") or "?"
        if module is None:
            return
        if module.split(".")[0] in DANGEROUS_FUNCTION_MODULES:
            self.deny(node, f"{shown} is {module}.{own_name}, from a forbidden module",
                      "use the authorized modules")
        elif own_name in FORBIDDEN_ATTRS and module.startswith(("IPython", "ipykernel")):
            self.deny(node, f"{shown} is {own_name} ({FORBIDDEN_ATTRS[own_name]}), which is not allowed",
                      "show results as text, tables, DataFrames or figures")
        elif module.startswith(("IPython", "ipykernel")) and not module.startswith(
                ("IPython.core.display", "IPython.display", "IPython.lib.display")) and \
                own_name not in ("display", "clear_output", "update_display"):
            self.deny(node, f"{shown} is IPython's {own_name}, which is not allowed in agent code",
                      "write plain Python")

    def v_attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        ctx = node.ctx
        if attr in _REF_EFFECTS and type(ctx) is ast.Load and id(node) not in self._call_of:
            self.io_reference(node, attr)
        self._next_attr[id(node.value)] = attr
        if attr.startswith("__") and attr.endswith("__") and len(attr) > 4:
            self.check_dunder(node, attr, ctx)
        elif isinstance(ctx, ast.Load):
            self.check_attr_name(node, attr, node.value)
        if not isinstance(ctx, ast.Load):
            self.store_target(node, delete=isinstance(ctx, ast.Del))
        self.visit(node.value)

    def v_subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.store_target(node, delete=isinstance(node.ctx, ast.Del))
        self.visit(node.value)
        self.visit(node.slice)

    def check_dunder(self, node: ast.Attribute, attr: str, ctx: ast.AST) -> None:
        if not isinstance(ctx, ast.Load):
            self.deny(node, f"assigning or deleting the dunder attribute {attr!r} is not allowed",
                      "set ordinary attributes")
            return
        if attr == "__class__":
            if self._next_attr.get(id(node)) in _CLASS_NAME_ATTRS or (
                    id(node) in self._call_of and isinstance(node.value, ast.Name) and
                    node.value.id == self.method_self()):
                return
            self.deny(node, "access to '__class__' is only allowed as x.__class__.__name__ (or self.__class__(...)); "
                            "use type(x) for the class", "use type(x), isinstance(x, T) or type(x).__name__")
            return
        if attr in SAFE_DUNDERS:
            return
        if attr in SUPER_DUNDERS and self.is_super_call_receiver(node):
            return
        self.deny(node, f"access to the dunder attribute {attr!r} is not allowed",
                  "use public attributes and functions (type(x), isinstance, dir)")

    def is_super_call_receiver(self, node: ast.Attribute) -> bool:
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
            return True
        call = self._call_of.get(id(node))
        self_name = self.method_self()
        if call is not None and self_name and call.args and isinstance(call.args[0], ast.Name) and \
                call.args[0].id == self_name and isinstance(value, ast.Name):
            return True  # Base.__init__(self, ...) inside a method
        return False

    def method_self(self) -> str | None:
        for scope in reversed(self.scopes):
            if scope.kind == "function":
                return scope.self_name
        return None

    def check_attr_name(self, node: ast.AST, attr: str, value: ast.AST | None, shown: str | None = None,
                        class_ok: bool = True) -> None:
        """Checks one attribute name read from ``value`` (None: the receiver is unknown)."""
        if attr.startswith("__") and attr.endswith("__") and len(attr) > 4:
            if attr not in SAFE_DUNDERS or (attr == "__class__" and not class_ok):
                shown = shown or self.snippet(node)
                self.deny(node, f"{shown} reads the dunder attribute {attr!r}, which is not allowed",
                          "use public attributes")
            return
        why = FORBIDDEN_ATTRS.get(attr)
        if why is None and ("subprocess" in attr.lower() or attr.startswith("_repr_javascript")):
            why = "running processes"
        if why is None and value is None:
            return
        if shown is None:
            shown = _Lazy(lambda: self.snippet(node) if isinstance(node, ast.Attribute) else repr(attr))
        if why is not None:
            self.deny(node, f"{shown} reaches {attr!r} ({why}), which is not allowed in agent code",
                      "use the public API of the authorized modules")
            return
        base = self.ref(value)
        if base is None or base.kind != "module":
            return
        if attr.startswith("_"):
            self.deny(node, f"{shown} reaches {attr!r}, a private internal of the module {base.name!r}",
                      f"use the public API of {base.name.split('.')[0]}")
            return
        target = self.ref(node) if isinstance(node, ast.Attribute) else _attr_ref(base, attr)
        if target is None:
            return
        if target.kind == "module":
            self.check_ref(node, target, shown)
        elif target.obj is _MISSING:
            if attr in AMBIGUOUS_MODULE_ATTRS:
                self.deny(node, f"{shown} looks like the module {attr!r} held by {base.name!r}, which is not allowed",
                          "use the public API of the authorized modules")
        else:
            self.check_ref(node, target, shown)

    # -- visitors: imports ----------------------------------------------------------

    def check_module(self, node: ast.AST, module: str) -> bool:
        if module_forbidden(module):
            self.deny(node, f"import of {module!r} is forbidden (process, OS or interpreter access)",
                      "use the authorized modules")
            return False
        if not self.policy.import_allowed(module):
            self.deny(node, f"import of {module!r} is not authorized; authorized: "
                            f"{', '.join(self.policy.authorized_imports)}", "use the authorized modules")
            self.findings[-1].note = "It does not run; the user can authorize it (--imports or authorized_imports)."
            return False
        if any(p.startswith("_") and not p.startswith("__") for p in module.split(".")[1:]):
            self.deny(node, f"import of {module!r}: private internals of a library are off limits",
                      "use the library's public API")
            return False
        return True

    def v_import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module(node, alias.name)
            bound = alias.asname or alias.name.split(".")[0]
            self.store_import(node, bound, alias.asname and alias.name or alias.name.split(".")[0], None)
            if alias.asname:
                self.check_store_dunder(node, alias.asname)

    def v_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.deny(node, "relative imports are not allowed", "import modules by their full name")
            return
        module = node.module or ""
        if not self.check_module(node, module):
            return
        mod = sys.modules.get(module)
        for alias in node.names:
            if alias.name == "*":
                continue
            shown = f"from {module} import {alias.name}"
            if alias.name.startswith("__") and alias.name.endswith("__"):
                if alias.name not in SAFE_DUNDERS:
                    self.deny(node, f"{shown}: importing the dunder {alias.name!r} is not allowed", "use public names")
                continue
            if module == "IPython.display" or module.startswith("IPython.display."):
                if alias.name in FORBIDDEN_ATTRS:
                    self.deny(node, f"{shown}: {alias.name} shows active content (code) in the user's browser",
                              "show results as text, tables, DataFrames or figures")
                continue
            if _is_submodule(module, alias.name, mod):
                self.check_module(node, f"{module}.{alias.name}")
            else:
                why = FORBIDDEN_ATTRS.get(alias.name)
                if why is not None:
                    self.deny(node, f"{shown} reaches {alias.name!r} ({why}), which is not allowed",
                              "use the public API of the authorized modules")
                elif alias.name.startswith("_"):
                    self.deny(node, f"{shown}: private internals of a library are off limits",
                              "use the library's public API")
                else:
                    target = _attr_ref(_Ref("module", module, mod if mod is not None else _MISSING), alias.name)
                    if target.kind == "module" or target.obj is not _MISSING:
                        self.check_ref(node, target, shown)
                    elif alias.name in AMBIGUOUS_MODULE_ATTRS:
                        self.deny(node, f"{shown} looks like a module that is not allowed", "use the public API")
            bound = alias.asname or alias.name
            self.check_store_dunder(node, bound)
            self.store_import(node, bound, None, (module, alias.name))

    def check_store_dunder(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") and name.endswith("__") and len(name) > 4:
            self.deny(node, f"binding the dunder name {name!r} is not allowed", "use an ordinary name")

    def store_import(self, node: ast.AST, bound: str, module: str | None, from_: tuple[str, str] | None) -> None:
        if not self.binds_module_name(bound):
            return
        current = self.ns.get(bound, _MISSING)
        if current is not _MISSING:
            if module is not None and sys.modules.get(module, _MISSING) is current:
                return  # re-running `import pandas as pd` where pd already is pandas
            if from_ is not None:
                mod = sys.modules.get(from_[0])
                if mod is not None and getattr(mod, from_[1], _MISSING) is current:
                    return
                if sys.modules.get(f"{from_[0]}.{from_[1]}", _MISSING) is current:
                    return
        self.store_name(node, bound, None)

    # -- visitors: statements that bind or change -------------------------------------

    def v_assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr == "backend" and isinstance(target.value, ast.Attribute) \
                    and target.value.attr == "plotting":
                for value in self.values(node.value) or {None}:
                    if value not in _PLOTTING_BACKENDS:
                        self.deny(node, f"the plotting backend {value!r} is a module pandas would import by name",
                                  "use the default plotting backend")
        for target in node.targets:
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Name) and target.id == node.value.id:
                continue  # x = x
            self.visit(target)

    def v_annassign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        self.annotation(node.annotation)

    def v_augassign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        target = node.target
        if isinstance(target, ast.Name):
            if self.binds_module_name(target.id) and not self.is_local(target.id):
                protected, why = self.protected(target.id)
                if protected:
                    value = self.ns.get(target.id)
                    if _immutable(value):
                        self.ask(node, f"rebinds the user's variable {target.id!r} ({why})",
                                 self.data_capability(target.id),
                                 "store the result under a new name")
                    else:
                        self.mutation(node, target.id, f"{target.id} {_OPS.get(type(node.op), '<op>')}= "
                                                       f"{self.snippet(node.value, 30)}")
        else:
            self.visit(target)

    def v_delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.visit(target)

    def v_for(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    def v_with(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    def v_namedexpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def v_handler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.check_store_dunder(node, node.name)
            self.store_name(node, node.name, None)
        for stmt in node.body:
            self.visit(stmt)

    def v_match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        for case in node.cases:
            for sub in ast.walk(case.pattern):
                name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                if isinstance(name, str):
                    self.store_name(sub, name, None)
                if isinstance(sub, ast.MatchValue):
                    self.visit(sub.value)
                elif isinstance(sub, ast.MatchClass):
                    self.visit(sub.cls)
            if case.guard is not None:
                self.visit(case.guard)
            for stmt in case.body:
                self.visit(stmt)

    def v_global(self, node: ast.Global) -> None:
        self.scope.globals.update(node.names)

    def v_function(self, node: ast.FunctionDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        args = node.args
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.annotation(arg.annotation)
        self.annotation(node.returns)
        if node.name.startswith("_repr_javascript"):
            self.deny(node, "defining _repr_javascript_ makes objects show code in the user's browser",
                      "show results as text, tables or figures")
        self.store_name(node, node.name, None)
        params = [a.arg for a in args.posonlyargs + args.args]
        in_class = self.scope.kind == "class"
        scope = _Scope("function", set(self.binder.scope_locals.get(id(node), set())),
                       set(self.binder.scope_globals.get(id(node), set())),
                       self_name=params[0] if in_class and params else None, node=node)
        self.scopes.append(scope)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()
        if not in_class and params and self.context is not None:
            self.functions[node.name] = (node, params)

    def mutated_params(self, name: str) -> set[int]:
        """Positions of the parameters a function defined in the code changes in place."""
        got = self._mutated_params.get(name)
        if got is None:
            func, params = self.functions[name]
            changed = _changed_roots(func)
            got = self._mutated_params[name] = {i for i, p in enumerate(params) if p in changed}
        return got

    def v_lambda(self, node: ast.Lambda) -> None:
        args = node.args
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg] if a}
        self.scopes.append(_Scope("function", names, node=node))
        self.visit(node.body)
        self.scopes.pop()

    def v_class(self, node: ast.ClassDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        for base in node.bases:
            self.visit(base)
        for kw in node.keywords:
            self.visit(kw.value)
        self.store_name(node, node.name, None)
        self.scopes.append(_Scope("class", set(self.binder.scope_locals.get(id(node), set())), node=node))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def v_comp(self, node: ast.AST) -> None:
        names: set[str] = set()
        iters: dict[str, ast.expr] = {}
        for gen in node.generators:
            _target_names(gen.target, names)
            if isinstance(gen.target, ast.Name):
                iters[gen.target.id] = gen.iter
        self.visit(node.generators[0].iter)
        self.scopes.append(_Scope("comprehension", names, node=node))
        self.comp_iters.append(iters)
        for i, gen in enumerate(node.generators):
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.comp_iters.pop()
        self.scopes.pop()

    def v_await(self, node: ast.Await) -> None:
        if not any(s.kind == "function" and isinstance(s.node, ast.AsyncFunctionDef) for s in self.scopes):
            self.deny(node, "top-level await is not supported in agent code", "write synchronous code")
        self.visit(node.value)

    # -- constants -------------------------------------------------------------------

    def v_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and len(value) > 5:
            if _ACTIVE_CONTENT.search(value):
                self.active_content(node, value)
            match = _CODE_IN_STRING.search(value)
            if match:
                self.deny(node, f"a string holds code that reaches interpreter internals ({match.group(0)!r}); "
                                "template, query, annotation and format strings are code", "use plain strings")
            if value.startswith("module://") and not _KNOWN_BACKENDS.match(value):
                self.deny(node, f"{value[:60]!r} names a module to import (a plotting backend)",
                          "use the notebook's default backend")

    def v_joinedstr(self, node: ast.JoinedStr) -> None:
        folded = self.values(node)
        if folded is not None:
            for text in folded:
                if isinstance(text, str) and _ACTIVE_CONTENT.search(text):
                    self.active_content(node, text)
                    break
                if isinstance(text, str) and _CODE_IN_STRING.search(text):
                    self.deny(node, "a string holds code that reaches interpreter internals", "use plain strings")
                    break
        text = "".join(p.value if isinstance(p, ast.Constant) else "x" for p in node.values)
        if _ACTIVE_CONTENT.search(text):
            self.active_content(node, text)
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                self.visit(part.value)
                if part.format_spec is not None:
                    self.visit(part.format_spec)

    def active_content(self, node: ast.AST, text: str) -> None:
        match = _ACTIVE_CONTENT.search(text)
        found = match.group(0) if match else text[:20]
        self.deny(node, f"the string contains active content for the browser ({found!r}: scripts, event "
                        "handlers, frames or javascript: URLs)",
                  "show results as plain text, Markdown, DataFrames or figures, without scripts or event handlers")

    # -- calls ---------------------------------------------------------------------------

    def v_call(self, node: ast.Call) -> None:
        func = node.func
        self._call_of[id(func)] = node
        self.check_call(node)
        self.visit(func)
        for arg in node.args:
            self.visit(arg)
        for kw in node.keywords:
            self.visit(kw.value)

    def callee(self, func: ast.AST, depth: int = 0) -> tuple[str | None, str | None, ast.AST | None]:
        """(the function's own name, the module it comes from if known, the receiver expression).

        Sees through ``getattr(df, 'to_csv')(...)`` and ``f = df.to_csv; f(...)``.
        """
        if isinstance(func, ast.Attribute):
            base = self.ref(func.value)
            return func.attr, base.name if base is not None and base.kind == "module" else None, func.value
        if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr" and \
                len(func.args) >= 2 and "getattr" not in self.bindings:
            names = self.values(func.args[1])
            if names and len(names) == 1 and isinstance(next(iter(names)), str):
                fake = ast.Attribute(value=func.args[0], attr=next(iter(names)), ctx=ast.Load())
                return self.callee(fake, depth + 1)
            return None, None, None
        if isinstance(func, ast.Name):
            bound = self.code_bindings(func.id)
            if bound:
                for value in bound:
                    if value[0] == "from":
                        return value[2], value[1], None
                    if value[0] == "expr" and isinstance(value[1], ast.Attribute) and depth < 4:
                        return self.callee(value[1], depth + 1)
                return func.id, None, None
            value = self.ns.get(func.id, _MISSING)
            if value is not _MISSING and callable(value) and not isinstance(value, type):
                return _str_attr(value, "__name__") or func.id, _str_attr(value, "__module__"), None
            return func.id, None, None
        return None, None, None

    def check_call(self, node: ast.Call) -> None:  # noqa: C901 - the policy, one rule per branch
        name, module, recv = self.callee(node.func)
        if name is None:
            return
        if name not in _CALL_NAMES and not name.startswith("fetch_") and not node.keywords and (
                module is None or not self.effect_module(module)) and not (
                type(node.func) is ast.Name and node.func.id in self.functions):
            return  # the fast path: an ordinary call (most of them)
        builtin = isinstance(node.func, ast.Name) and node.func.id not in self.bindings and node.func.id not in self.ns
        if builtin and name in ("getattr", "hasattr", "setattr", "delattr"):
            self.dynamic_attribute(node, name)
        elif (builtin and name == "open") or (name in ("open", "FileIO", "open_code") and module in (
                "io", "_io", "codecs", "gzip", "bz2", "lzma", "builtins", "tokenize")):
            self.open_call(node)
            return
        elif builtin and name == "super":
            return
        if name in ("__getattribute__", "__getattr__", "__setattr__", "__delattr__") and node.args:
            # super().__getattribute__(name) / object.__getattribute__(self, name): a getattr in disguise
            on_super = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
            at = 0 if on_super else 1
            if len(node.args) > at:
                obj = node.func.value if on_super else node.args[0]
                fake = ast.Call(func=ast.Name("getattr", ast.Load()), args=[obj, node.args[at]], keywords=[])
                ast.copy_location(fake, node)
                self.dynamic_attribute(fake, "getattr" if "get" in name else "setattr")
        if name in ("ForwardRef", "TypeVar"):
            for arg in node.args[:1] if name == "ForwardRef" else [kw.value for kw in node.keywords if kw.arg == "bound"]:
                for text in self.values(arg) or ():
                    if isinstance(text, str):
                        self.check_code_text(node, text, f"{name}({text[:40]!r})")
        if name in ("attrgetter", "methodcaller"):
            for arg in node.args[:1] if name == "methodcaller" else node.args:
                self.literal_attr_arg(node, arg, name, dotted=name == "attrgetter")
        if name in ("format", "format_map", "vformat", "get_field") and recv is not None:
            self.format_call(node, recv)
        if name in ("eval", "query") and (recv is not None) and module is None or (name == "eval" and module and
                                                                                  module.startswith("pandas")):
            self.expression_string(node, name)
        if name in ("apply", "agg", "aggregate", "transform", "pipe", "map", "applymap", "resample_apply"):
            for arg in list(node.args[:1]) + [kw.value for kw in node.keywords if kw.arg in ("func", "arg")]:
                vals = self.values(arg) if isinstance(arg, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Name)) else None
                for v in vals or ():
                    if isinstance(v, str):
                        if v.startswith("__"):
                            self.deny(node, f"{name}({v!r}) calls a dunder method by name", "pass a function")
                        elif v in ("eval", "query") or v in WRITERS or v in PROCESS_CALLS:
                            self.ask(node, f"{name}({v!r}) calls {v} by name, which cannot be checked",
                                     "computed_access", "call the method directly")
        if name in PROCESS_CALLS:
            self.deny(node, f"{name}() {PROCESS_CALLS[name]}", "show the result instead")
        module_effects = self.module_effects(node, name, module)
        if not module_effects:
            self.io_call(node, name, module, recv)
        self.mutating_call(node, name, recv)
        if name in ("HTML", "Markdown", "SVG", "display_html", "display_markdown", "display_svg", "display",
                    "Latex", "Math", "HTMLMath"):
            for arg in node.args:
                vals = self.values(arg)
                for v in vals or ():
                    if isinstance(v, str) and _ACTIVE_CONTENT.search(v):
                        self.active_content(node, v)
                        break
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            for index in self.mutated_params(node.func.id):
                if index < len(node.args):
                    self.mutation_target(node, node.args[index], f"{node.func.id}() changes its argument "
                                                                 f"{self.snippet(node.args[index], 30)}")

    def effect_module(self, module: str) -> bool:
        got = self._effect_modules.get(module)
        if got is None:
            got = self._effect_modules[module] = _under(module, NETWORK_MODULES + UNPICKLE_MODULES + FILE_MODULES)
        return got

    def module_effects(self, node: ast.Call, name: str, module: str | None) -> bool:
        """Calls through network, pickle or file-operation modules. True when one applied."""
        if module is None or not self.effect_module(module):
            return False
        if module == "IPython.display" or module.startswith("IPython.core.display"):
            return False
        if _under(module, NETWORK_MODULES):
            self.ask(node, f"accesses the network ({module}.{name})", "network",
                     "ask the user to download the data into the notebook's folder")
            return True
        if _under(module, UNPICKLE_MODULES):
            if name in ("load", "loads", "Unpickler", "open", "DbfilenameShelf"):
                self.ask(node, f"loads a pickle with {module}.{name}(): a pickle runs code stored in it, and the "
                               "guard cannot see that code", "unpickle",
                         "read data from CSV, Parquet or JSON, or ask the user to approve this file")
            elif name in ("dump", "dumps", "Pickler"):
                if name != "dumps":
                    self.ask(node, f"writes a pickle file with {module}.{name}()", "write_files",
                             "keep the result in a variable; the user can save it")
            return True
        if _under(module, FILE_MODULES):
            if name in ("which", "disk_usage", "get_terminal_size", "get_archive_formats", "gettempdir"):
                return True
            cap = "delete_files" if name in ("rmtree", "move", "remove", "unlink") else "write_files"
            self.ask(node, f"{'deletes or moves' if cap == 'delete_files' else 'writes'} files with {module}.{name}()",
                     cap, "keep results in variables; the user can manage files")
            return True
        return False

    # -- calls: attributes by name ----------------------------------------------------------

    def dynamic_attribute(self, node: ast.Call, fn: str) -> None:
        if len(node.args) < 2:
            return
        target, name_arg = node.args[0], node.args[1]
        names = self.values(name_arg)
        if names is None or not all(isinstance(n, str) for n in names):
            if self.assembles_dunder():
                self.deny(node, f"{fn}() with a computed attribute name, in code that builds dunder names",
                          "use literal attribute names")
            else:
                self.ask(node, f"{fn}() with a computed attribute name ({self.snippet(name_arg)}) cannot be "
                               "checked before it runs", "computed_access",
                         f"use a literal name, e.g. {fn}(obj, 'mean')")
            return
        for attr in names:
            shown = f"{fn}({self.snippet(target, 30)}, {attr!r})"
            if attr.startswith("__") and attr.endswith("__") and len(attr) > 4 and attr not in SAFE_DUNDERS:
                self.deny(node, f"{shown} reaches the dunder attribute {attr!r}, which is not allowed",
                          "use public attributes and functions")
            elif fn in ("setattr", "delattr"):
                if attr.startswith("__") and attr.endswith("__"):
                    self.deny(node, f"{shown} changes the dunder attribute {attr!r}", "set ordinary attributes")
            else:
                self.check_attr_name(node, attr, target, shown)
        if fn in ("setattr", "delattr"):
            ref = self.ref(target)
            if ref is not None and ref.kind == "module":
                self.ask(node, f"{fn}() on the module {ref.name} changes it for the whole session (monkeypatching)",
                         "mutate_data", "define your own function under a new name instead")
            self.mutation_target(node, target, f"{fn}({self.snippet(target, 30)}, ...)")

    def literal_attr_arg(self, node: ast.Call, arg: ast.AST, fn: str, dotted: bool) -> None:
        names = self.values(arg)
        if names is None:
            self.ask(node, f"{fn}() with a computed attribute name cannot be checked", "computed_access",
                     "use a literal name")
            return
        for value in names:
            if isinstance(value, str):
                for attr in value.split(".") if dotted else [value]:
                    self.check_attr_name(node, attr, None, f"{fn}({value!r})")

    def assembles_dunder(self) -> bool:
        """Does the code hold string pieces that look like parts of a dunder name?"""
        if not hasattr(self, "_assembles"):
            self._assembles = any(
                isinstance(n, ast.Constant) and isinstance(n.value, str) and
                (n.value.startswith("__") or n.value.endswith("__") or n.value in ("_", "__"))
                for n in ast.walk(self.scopes[0].node))
        return self._assembles

    def format_call(self, node: ast.Call, recv: ast.AST) -> None:
        candidates = []
        recv_values = self.values(recv)
        if recv_values is not None:
            candidates += [v for v in recv_values if isinstance(v, str)]
        if node.args:
            arg_values = self.values(node.args[0])
            if arg_values is not None:
                candidates += [v for v in arg_values if isinstance(v, str)]
        if not candidates:
            if self.stringish(recv):
                self.ask(node, f"a format string computed at run time ({self.snippet(recv)}) can read attributes "
                               "through its fields", "computed_access", "use an f-string or a literal format string")
            return
        if _callee_name(node.func) == "get_field":
            candidates = ["{" + c + "}" for c in candidates]
        for text in candidates:
            for chain in _format_fields(text):
                if chain is None:
                    if self.assembles_dunder():
                        self.deny(node, "a format string with unparseable fields", "use a simple format string")
                    continue
                for i, attr in enumerate(chain):
                    nxt = chain[i + 1] if i + 1 < len(chain) else None
                    self.check_attr_name(node, attr, None, f"the format field .{attr} in {text[:40]!r}",
                                         class_ok=nxt in _CLASS_NAME_ATTRS)

    def stringish(self, node: ast.AST) -> bool:
        """Might this expression be a string the code computed (rather than some other object)?"""
        if isinstance(node, (ast.BinOp, ast.JoinedStr, ast.Constant)):
            return True
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            return name in ("str", "chr", "join", "replace", "lower", "upper", "strip", "format", "decode")
        if isinstance(node, ast.Name):
            bound = self.code_bindings(node.id)
            if bound is None:
                return isinstance(self.ns.get(node.id), str)
            return any(v[0] == "expr" and self.stringish(v[1]) for v in bound if v[0] == "expr" and
                       not isinstance(v[1], ast.Name))
        if isinstance(node, ast.Subscript):
            return False
        return False

    def expression_string(self, node: ast.Call, name: str) -> None:
        """pandas' eval/query strings can read attributes (dunders included) and call functions."""
        arg = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg in ("expr",)), None)
        if arg is None:
            return
        vals = self.values(arg)
        if vals is None or not all(isinstance(v, str) for v in vals):
            self.ask(node, f"{name}() with an expression computed at run time cannot be checked", "computed_access",
                     "use ordinary pandas indexing, or a literal expression")
            return
        for text in vals:
            cleaned = re.sub(r"`[^`]*`", "_col", text).replace("@", "")
            if not self.check_code_text(node, cleaned, f"{name}({text[:40]!r})"):
                self.ask(node, f"{name}({text[:40]!r}) cannot be parsed, so it cannot be checked",
                         "computed_access", "use ordinary pandas indexing")

    def check_code_text(self, node: ast.AST, text: str, shown: str) -> bool:
        """A string that some library evaluates as Python (pandas eval/query, string annotations,
        ForwardRef): check its names and attributes like code. False if it does not parse."""
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            try:
                tree = ast.parse(text.strip())
            except SyntaxError:
                return False
        subs = list(ast.walk(tree))
        following = {id(sub.value): sub.attr for sub in subs if isinstance(sub, ast.Attribute)}
        for sub in subs:
            if isinstance(sub, ast.Attribute):
                self.check_attr_name(node, sub.attr, None, shown,
                                     class_ok=following.get(id(sub)) in _CLASS_NAME_ATTRS)
            elif isinstance(sub, ast.Name):
                value = self.ns.get(sub.id, _MISSING)
                if sub.id in FORBIDDEN_BUILTINS or sub.id in IPYTHON_NAMES or sub.id in FORBIDDEN_ATTRS or \
                        sub.id in ("getattr", "setattr", "delattr", "hasattr") or (
                        sub.id.startswith("__") and sub.id.endswith("__")):
                    self.deny(node, f"{shown} uses {sub.id!r}, which is not allowed", "write the code directly")
                elif isinstance(value, types.ModuleType):
                    self.check_ref(node, _Ref("module", value.__name__, value), shown)
                elif value is not _MISSING and callable(value):
                    self.check_ref(node, _Ref("object", _origin(value), value), shown)
        return True

    def annotation(self, node: ast.AST | None) -> None:
        """Visit an annotation; string annotations are code too (typing.get_type_hints evaluates them)."""
        if node is None:
            return
        self.visit(node)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self.check_code_text(sub, sub.value, f"the string annotation {sub.value[:40]!r}")

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

    # -- data protection ------------------------------------------------------------------------

    def protected(self, name: str) -> tuple[bool, str]:
        """Is ``name`` the user's data, which agent code may not rebind or change without asking?"""
        cached = self._protected_cache.get(name)
        if cached is not None:
            return cached
        result = self._protected(name)
        self._protected_cache[name] = result
        return result

    def _protected(self, name: str) -> tuple[bool, str]:
        ctx = self.context
        if ctx is None:
            return False, ""
        value = ctx.namespace.get(name, _MISSING)
        if name in ctx.protected:
            return True, "protected with --protect" + (f"; {_describe(value)}" if value is not _MISSING else "")
        if value is _MISSING or name in ctx.agent_names or name.startswith("_"):
            return False, ""
        if name in ctx.hidden:
            return False, ""
        if _free_value(value):
            return False, ""
        return True, _describe(value)

    def store_name(self, node: ast.AST, name: str, target: ast.AST | None, delete: bool = False) -> None:
        """``name`` is bound (or deleted) by the code."""
        if self.context is None or not self.binds_module_name(name) or self.is_local(name):
            return
        if name in self.context.hidden and name != "_":
            self.deny(node, f"{'deletes' if delete else 'rebinds'} {name!r}, which belongs to the agent or to IPython",
                      "use a new name")
            return
        protected, why = self.protected(name)
        if protected:
            verb = "deletes" if delete else "rebinds"
            self.ask(node, f"{verb} the user's variable {name!r} ({why})", self.data_capability(name),
                     f"store your result under a new name, e.g. {name}_2 = ...")

    def data_capability(self, name: str) -> str | None:
        """'mutate_data', or None for a name protected with --protect: only a person may approve that."""
        return None if self.context is not None and name in self.context.protected else "mutate_data"

    def store_target(self, target: ast.AST, delete: bool) -> None:
        """An attribute or item of something is assigned or deleted."""
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            ref = self.ref(target.value)
            if ref is not None and ref.kind == "module":
                self.ask(target, f"{'deletes' if delete else 'replaces'} {ref.name}.{target.attr} for the whole "
                                 "session (monkeypatching a module)", "mutate_data",
                         "define your own function under a new name instead")
                return
        how = ("deletes an item of" if delete else "assigns an item of") if isinstance(target, ast.Subscript) else \
            ("deletes an attribute of" if delete else "sets an attribute of")
        self.mutation_target(target, target, f"{how} {self.snippet(target, 40)}", strip=True)

    def mutation_target(self, node: ast.AST, expr: ast.AST, what: str, strip: bool = False) -> None:
        if self.context is None:
            return
        chain = expr.value if strip and isinstance(expr, (ast.Attribute, ast.Subscript)) else expr
        for root in self.roots(chain):
            value = self.ns.get(root, _MISSING)
            if isinstance(value, types.ModuleType):
                continue  # module settings (pd.options..., plt.rcParams[...]) are not the user's data
            protected, why = self.protected(root)
            if protected:
                self.mutation(node, root, what)

    def mutation(self, node: ast.AST, name: str, how: str) -> None:
        """``how`` changes the user's variable ``name`` in place."""
        value = self.ns.get(name, _MISSING)
        message = f"changes the user's variable {name!r} ({self.protected(name)[1]}) in place: {how}"
        can_undo = (self.context.can_undo if self.context and self.context.can_undo else undoable)
        ok, why = can_undo(value) if value is not _MISSING else (False, "it does not exist yet")
        if not ok:
            message += f"; undo cannot restore it ({why})"
        self.ask(node, message, self.data_capability(name),
                 f"work on a copy under a new name, e.g. {name}_2 = {name}.copy()", irreversible=not ok)

    def roots(self, expr: ast.AST, depth: int = 0) -> set[str]:
        """The user's variables an Attribute/Subscript chain (or an alias of one) points into."""
        if depth > 6:
            return set()
        while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return set()
        name = expr.id
        if self.is_local(name):
            local_aliases: set[str] = set()
            if self.comp_iters and name in self.comp_iters[-1]:
                local_aliases |= self.roots(self.comp_iters[-1][name], depth + 1)
            return local_aliases
        out: set[str] = set()
        bound = self.code_bindings(name)
        if bound is None:
            out.add(name)
        else:
            for value in bound:
                if value[0] == "expr" and isinstance(value[1], (ast.Name, ast.Attribute, ast.Subscript)):
                    out |= self.roots(value[1], depth + 1)
                elif value[0] == "iter" and isinstance(value[1], (ast.Name, ast.Attribute, ast.Subscript)):
                    out |= self.roots(value[1], depth + 1)
        return out

    def mutating_call(self, node: ast.Call, name: str, recv: ast.AST | None) -> None:
        if self.context is None:
            return
        if recv is not None:
            inplace = _inplace(node)
            roots = self.roots(recv) if (inplace or name in _GENERIC_MUT or name in _PANDAS_MUT) else set()
            for root in roots:
                value = self.ns.get(root, _MISSING)
                if isinstance(value, types.ModuleType) or value is _MISSING:
                    continue
                protected, why = self.protected(root)
                if not protected:
                    continue
                direct = isinstance(recv, ast.Name) and recv.id == root
                if inplace:
                    self.mutation(node, root, f"{self.snippet(node.func)}(..., inplace=True)")
                elif name in _mutators_for(value if direct else None, value):
                    self.mutation(node, root, f"{self.snippet(node.func)}()")
        if name in ARG_MUTATORS and name not in ("setattr", "delattr") and node.args and (
                name != "put" or recv is None or self.ref(recv) is not None):
            if name == "at" and not (recv is not None and isinstance(recv, ast.Attribute)):
                return
            self.mutation_target(node, node.args[0], self.snippet(node, 50))
        out = _kw(node, "out")
        if out is not None:
            self.mutation_target(node, out, f"{self.snippet(node.func)}(..., out={self.snippet(out, 30)})")


# -- helpers ---------------------------------------------------------------------------------


_OP_CAP = {"write": "write_files", "delete": "delete_files"}
_OP_VERB = {"write": "writes", "delete": "deletes or moves", "read": "reads", "list": "lists"}
_OP_INSTEAD = {"write": "keep the result in a variable; the user can save it",
               "delete": "leave files as they are; tell the user what to delete"}
_CLASS_NAME_ATTRS = ("__name__", "__qualname__", "__module__", "__doc__")
_PATH_CLASSES = ("Path", "PurePath", "PosixPath", "PurePosixPath", "WindowsPath")
_PATH_RETURNING = ("home", "cwd", "joinpath", "with_suffix", "with_name", "with_stem", "expanduser", "resolve",
                   "absolute", "relative_to")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.BitOr: "|", ast.BitAnd: "&"}


# Fields that never hold code worth visiting (contexts, operators, names as strings).
_LEAF_FIELDS = frozenset({"ctx", "op", "ops", "type_comment", "kind", "conversion", "is_async", "id", "attr",
                          "name", "arg", "level", "module", "n", "s", "value_str"})
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _is_builtin_here(ns: Mapping[str, Any], name: str) -> bool:
    """Does ``name`` mean the builtin (or IPython's object) here, not a variable of the user's?"""
    return _is_data(ns, name) is False


def _is_data(ns: Mapping[str, Any], name: str) -> bool:
    value = ns.get(name, _MISSING)
    return value is not _MISSING and not callable(value) and not isinstance(value, types.ModuleType)


def _noop(node: ast.AST) -> None:
    return None


def _kw(node: ast.Call, name: str) -> ast.AST | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _inplace(node: ast.Call) -> bool:
    value = _kw(node, "inplace")
    return value is not None and not (isinstance(value, ast.Constant) and not value.value)


def _callee_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _chain_root(expr: ast.AST) -> str | None:
    while isinstance(expr, (ast.Attribute, ast.Subscript)):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _target_names(target: ast.AST, out: set[str]) -> None:
    if isinstance(target, ast.Name):
        out.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_names(elt, out)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, out)


def _changed_roots(func: ast.AST) -> set[str]:
    """Names whose objects a function body changes in place (item/attribute stores, mutator calls)."""
    out: set[str] = set()
    for sub in ast.walk(func):
        t = type(sub)
        if (t is ast.Subscript or t is ast.Attribute) and type(sub.ctx) is not ast.Load:
            root = _chain_root(sub)
        elif t is ast.Call and type(sub.func) is ast.Attribute and (sub.func.attr in _ALL_MUT or _inplace(sub)):
            root = _chain_root(sub.func.value)
        else:
            continue
        if root:
            out.add(root)
    return out


class _Lazy:
    """A message part computed only if a finding needs it (ast.unparse is slow)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], str]):
        self.fn = fn

    def __format__(self, spec: str) -> str:
        return format(self.fn(), spec)

    __str__ = lambda self: self.fn()  # noqa: E731


def _product(parts: list[set]) -> set | None:
    out = {""}
    for part in parts:
        if len(out) * len(part) > 64:
            return None
        out = {a + b for a in out for b in part}
    return out


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _origin(value: Any) -> str:
    module, name = _str_attr(value, "__module__"), _str_attr(value, "__name__")
    return f"{module}.{name}" if module and name else ""


def _str_attr(value: Any, name: str) -> str | None:
    """A string attribute of a live object, or None: never trust arbitrary objects' attributes
    (a polars ``pl.col.__name__`` is an expression; a property may raise)."""
    try:
        got = getattr(value, name, None)
    except Exception:  # noqa: BLE001 - any object may raise anything
        return None
    return got if type(got) is str else None


def _attr_ref(base: _Ref, attr: str) -> _Ref:
    """``base.attr`` where ``base`` is a module: a module, a live object, or (unknown) a submodule name."""
    dotted = f"{base.name}.{attr}"
    mod = base.obj
    if mod is not _MISSING and mod is not None:
        try:
            value = vars(mod).get(attr, _MISSING)
        except TypeError:
            value = _MISSING
        if value is _MISSING:
            sub = sys.modules.get(dotted)
            if sub is not None:
                return _Ref("module", dotted, sub)
            if _is_submodule(base.name, attr, mod):
                return _Ref("module", dotted)
            return _Ref("object", dotted)
        if isinstance(value, types.ModuleType):
            return _Ref("module", _str_attr(value, "__name__") or dotted, value)
        return _Ref("object", dotted, value)
    if _is_submodule(base.name, attr):
        return _Ref("module", dotted, sys.modules.get(dotted, _MISSING))
    return _Ref("object", dotted)


_SUBMODULE_CACHE: dict[str, bool] = {}


def _is_submodule(module: str, name: str, mod: Any = None) -> bool:
    """Is ``module.name`` a submodule? Answered from the files, without importing anything."""
    dotted = f"{module}.{name}"
    if dotted in sys.modules:
        return True
    cached = _SUBMODULE_CACHE.get(dotted)
    if cached is not None:
        return cached
    result = False
    try:
        if mod is None or mod is _MISSING:
            mod = sys.modules.get(module)
        locations: list[str] = []
        if mod is not None:
            locations = list(getattr(mod, "__path__", []) or [])
        else:
            import importlib.util

            root = module.split(".")[0]
            spec = importlib.util.find_spec(root)  # a top-level lookup imports nothing
            if spec is not None and spec.submodule_search_locations:
                locations = list(spec.submodule_search_locations)
                for part in module.split(".")[1:]:
                    locations = [os.path.join(loc, part) for loc in locations if os.path.isdir(os.path.join(loc, part))]
        for loc in locations:
            if os.path.isdir(os.path.join(loc, name)):
                result = True
                break
            try:
                entries = os.listdir(loc)
            except OSError:
                continue
            if any(e == name + ".py" or (e.startswith(name + ".") and e.endswith((".so", ".pyd"))) for e in entries):
                result = True
                break
    except (ImportError, ValueError, OSError):
        result = False
    _SUBMODULE_CACHE[dotted] = result
    return result


def _full_path(path: str, root: str) -> str:
    expanded = os.path.expanduser(path)
    joined = expanded if os.path.isabs(expanded) else os.path.join(root, expanded)
    try:
        return os.path.realpath(joined)
    except (OSError, ValueError):
        return os.path.normpath(joined)


def _format_fields(text: str) -> list[list[str] | None]:
    """The attribute chains a str.format string reads (``'{0.__class__}'`` -> [['__class__']]); None if unparsable."""
    import string

    out: list[list[str] | None] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except (ValueError, TypeError):
        return [None] if "." in text or "[" in text else []
    for _literal, field_name, spec, _conv in parsed:
        if field_name:
            chain = [p for part in re.split(r"\[[^\]]*\]", field_name) for p in part.split(".")[1:] if p]
            if chain:
                out.append(chain)
        if spec and "{" in spec:
            out.extend(_format_fields(spec))
    return out


def _free_value(value: Any) -> bool:
    """Plain numbers, booleans, None and short strings are not data to protect."""
    if value is None or isinstance(value, (bool, numbers.Number)):
        return True
    if isinstance(value, (str, bytes)) and len(value) <= SHORT_STRING:
        return True
    return False


def _immutable(value: Any) -> bool:
    return isinstance(value, (str, bytes, tuple, frozenset, numbers.Number, type(None)))


def _describe(value: Any) -> str:
    type_name = type(value).__name__
    try:
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
            return f"{type_name} {' x '.join(map(str, shape))}"
        return f"{type_name} of {len(value)}"
    except Exception:  # noqa: BLE001 - a description only
        return type_name


def _mutators_for(value: Any, root_value: Any) -> set[str]:
    """The methods that change ``value`` in place (None: a sub-object of ``root_value``)."""
    target = value if value is not None else root_value
    module = type(target).__module__ or ""
    if module.startswith("pandas"):
        return _PANDAS_MUT
    if module.startswith("numpy") and value is not None:
        return _NUMPY_MUT
    if module.startswith(("polars", "pyarrow")):
        return {"insert_column", "replace_column", "extend", "set_sorted"} if value is not None else set()
    if value is None:
        return _GENERIC_MUT - {"fit", "partial_fit", "set_params", "fit_transform", "fit_predict", "set_output"}
    if isinstance(value, list):
        return _LIST_MUT
    if isinstance(value, dict):
        return _DICT_MUT
    if isinstance(value, (set,)):
        return _SET_MUT
    if type(value).__name__ == "deque":
        return _DEQUE_MUT
    if callable(getattr(type(value), "get_params", None)) and callable(getattr(type(value), "fit", None)):
        return _ESTIMATOR_MUT
    return _GENERIC_MUT


def undoable(value: Any) -> tuple[bool, str]:
    """Can an undo restore ``value`` after an in-place change, from a copy taken before the action?

    Yes for DataFrames, Series, arrays and built-in containers up to ``UNDO_MAX_BYTES``; no for
    other objects (the guard cannot tell whether a copy would be faithful: models, figures,
    connections, files). The undo system should use the same predicate (``GuardContext.can_undo``).
    """
    module = type(value).__module__ or ""
    size = None
    try:
        if module.startswith("pandas") and hasattr(value, "memory_usage"):
            usage = value.memory_usage(deep=False)
            size = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        elif module.startswith("numpy") and hasattr(value, "nbytes"):
            size = int(value.nbytes)
        elif isinstance(value, (list, dict, set, bytearray)) or type(value).__name__ in ("deque", "defaultdict",
                                                                                         "OrderedDict", "Counter"):
            size = len(value) * 64
    except Exception:  # noqa: BLE001 - an estimate only
        size = None
    if size is None:
        return False, f"a {type(value).__name__} is not copied for undo"
    if size > UNDO_MAX_BYTES:
        return False, f"it is too big to copy ({size // 2**20} MB)"
    if module.startswith("numpy") and getattr(value, "base", None) is not None:
        return False, "it is a view into another array"
    return True, ""


# -- output hygiene: what reaches the browser and the model ---------------------------------------

_DROP_WITH_CONTENT = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "template",
                      "portal", "noembed", "xmp", "plaintext"}
_DROP_TAG = {"base", "meta", "link", "form", "input", "button", "textarea", "select", "option", "frame", "param",
             "set", "animate", "animatetransform", "animatemotion", "handler", "listener", "foreignobject"}
_URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "background", "poster", "data", "dynsrc",
              "lowsrc", "ping", "codebase", "cite", "longdesc", "usemap", "manifest", "srcset", "to", "from",
              "values", "by"}
_BAD_URL = re.compile(r"^\s*(javascript|vbscript|livescript|data\s*:\s*(text/html|application|image/svg))", re.I)


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.stack: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]], end: bool = False) -> None:
        tag = tag.lower()
        if tag in _DROP_WITH_CONTENT:
            if not end:
                self.skip += 1
                self.stack.append(tag)
            return
        if self.skip or tag in _DROP_TAG:
            return
        kept = []
        for key, value in attrs:
            key = key.lower()
            if key.startswith("on") or key in ("srcdoc", "style") and value and re.search(
                    r"expression\s*\(|javascript:|url\s*\(", value, re.I) or key == "srcdoc":
                continue
            if key in _URL_ATTRS and value and _BAD_URL.match(re.sub(r"[\x00-\x20]", "", html.unescape(value))):
                continue
            if key == "attributename":
                continue
            kept.append(key if value is None else f'{key}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(' ' + k for k in kept)}{' /' if end else ''}>")
        if tag == "style" and not end:
            self.in_style = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs, end=True)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in _DROP_WITH_CONTENT:
            if self.skip and tag in self.stack:
                while self.stack:
                    popped = self.stack.pop()
                    self.skip -= 1
                    if popped == tag:
                        break
            return
        if self.skip or tag in _DROP_TAG:
            return
        if tag == "style":
            self.in_style = False
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_style:
            if not re.search(r"expression\s*\(|javascript:|@import|behavior\s*:|-moz-binding", data, re.I):
                self.out.append(data.replace("</", "<\\/"))
            return
        self.out.append(html.escape(data, quote=False))


def sanitize_html(text: str) -> str:
    """Inert HTML: no scripts, frames, objects, forms, event handlers or javascript: URLs.

    Tables, formatting, images, SVG shapes and <style> (without script-like CSS) survive, so
    DataFrames and Styler output still look right.
    """
    parser = _Sanitizer()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # noqa: BLE001 - on any parse trouble, show the text, not the markup
        return html.escape(text)
    return "".join(parser.out)


_ACTIVE_MIME = {"application/javascript", "text/javascript", "application/x-javascript",
                "application/ecmascript", "text/ecmascript"}


def sanitize_bundle(data: Mapping[str, Any]) -> dict[str, Any]:
    """A display mime bundle without active content: JavaScript dropped, HTML/SVG/Markdown made inert."""
    out: dict[str, Any] = {}
    for mime, value in data.items():
        if mime in _ACTIVE_MIME or "javascript" in mime:
            continue
        if mime in ("text/html", "image/svg+xml") and isinstance(value, str):
            value = sanitize_html(value)
        elif mime == "text/markdown" and isinstance(value, str):
            value = re.sub(r"\]\(\s*(javascript|vbscript|data)\s*:[^)]*\)", "](#)", sanitize_html(value), flags=re.I)
        out[mime] = value
    if not out and data:
        out["text/plain"] = "[active content removed by the guard]"
    return out


def sanitize_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """nbformat outputs of an agent action, made inert before they reach the browser."""
    clean = []
    for output in outputs:
        if output.get("output_type") in ("display_data", "execute_result", "update_display_data"):
            output = {**output, "data": sanitize_bundle(output.get("data", {}))}
        clean.append(output)
    return clean


_SECRET_CACHE: dict[tuple, re.Pattern | None] = {}


def redact_secrets(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace the values of secret-looking environment variables (``*KEY*``, ``*TOKEN*`` ...) in ``text``.

    Defence in depth for everything sent to the model (observations, variable summaries): the
    guard stops agent code from reading the environment; this catches a secret that reached an
    output some other way (a variable the user made from it, a library's error message).
    """
    env = os.environ if environ is None else environ
    secrets = tuple(sorted({v for k, v in env.items() if _SECRET_ENV.search(k) and isinstance(v, str) and len(v) >= 8},
                           key=len, reverse=True))
    if not secrets or not text:
        return text
    pattern = _SECRET_CACHE.get(secrets)
    if pattern is None:
        pattern = re.compile("|".join(re.escape(s) for s in secrets))
        _SECRET_CACHE.clear()
        _SECRET_CACHE[secrets] = pattern
    return pattern.sub("[redacted secret]", text)

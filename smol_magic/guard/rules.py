"""The policy's tables: what is never allowed, what needs a person, and the names each rule looks for."""

from __future__ import annotations

import ast
import builtins
import functools
import re
from typing import Iterable


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
# A character every match of _ACTIVE_CONTENT (<, :, =, /), _CODE_IN_STRING (_, |) or a backend URL (:) holds:
# most strings (column names, labels) have none, and one search of this skips the two long ones.
_MAYBE_CODE = re.compile(r"[<:=/_|]")
_KNOWN_BACKENDS = re.compile(r"^module://(matplotlib_inline\.backend_inline|ipympl\.backend_nbagg)$")
_PLOTTING_BACKENDS = {"matplotlib", "plotly", "hvplot", "holoviews", "pandas_bokeh", "altair"}


@functools.lru_cache(maxsize=4096)
def module_forbidden(module: str) -> bool:
    """Is ``module`` forbidden by the tables above (whatever a policy releases)? Cached: the tables are constants."""
    if any(module == a or module.startswith(a + ".") for a in ALLOWED_UNDER_FORBIDDEN):
        return False
    if module.split(".")[0] in FORBIDDEN_MODULES:
        return True
    return any(module == s or module.startswith(s + ".") for s in FORBIDDEN_SUBMODULES)


# -- names the rules share ------------------------------------------------------------------


_OP_CAP = {"write": "write_files", "delete": "delete_files"}
_OP_VERB = {"write": "writes", "delete": "deletes or moves", "read": "reads", "list": "lists"}
_OP_INSTEAD = {"write": "keep the result in a variable; the user can save it",
               "delete": "leave files as they are; tell the user what to delete"}
_CLASS_NAME_ATTRS = ("__name__", "__qualname__", "__module__", "__doc__")
_PATH_CLASSES = ("Path", "PurePath", "PosixPath", "PurePosixPath", "WindowsPath")
_PATH_RETURNING = ("home", "cwd", "joinpath", "with_suffix", "with_name", "with_stem", "expanduser", "resolve",
                   "absolute", "relative_to")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.BitOr: "|", ast.BitAnd: "&"}


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)

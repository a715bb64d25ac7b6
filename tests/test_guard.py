"""The guard's policy, family by family: what it denies, what it asks about, what it lets through.

These check verdicts and reasons; ``test_attacks.py`` runs the attacks for real and checks
that their effects do not happen.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smol_magic import CodeAgent, ScriptedModel, guard
from smol_magic.guard import GuardContext, Policy, check
from smol_magic.core.memory import ActionStep, AgentMemory, Verdict


def reasons(verdict) -> str:
    return "\n".join(verdict.reasons)


# -- deny, by family: (code, a substring of some reason) ---------------------------------------------------------

DENY = {
    "process and OS access": [
        ("import os", "'os' is forbidden"),
        ("import os.path as p", "'os.path' is forbidden"),
        ("from os import system", "'os' is forbidden"),
        ("from os import path as p", "'os' is forbidden"),
        ("from subprocess import run as r", "'subprocess' is forbidden"),
        ("import subprocess, pandas", "'subprocess' is forbidden"),
        ("import sys", "'sys' is forbidden"),
        ("import importlib", "'importlib' is forbidden"),
        ("import importlib.util", "'importlib.util' is forbidden"),
        ("import builtins", "'builtins' is forbidden"),
        ("import ctypes", "'ctypes' is forbidden"),
        ("import pty", "'pty' is forbidden"),
        ("import signal", "'signal' is forbidden"),
        ("import multiprocessing", "'multiprocessing' is forbidden"),
        ("import socket", "'socket' is forbidden"),
        ("import posix", "'posix' is forbidden"),
        ("import asyncio", "'asyncio' is forbidden"),
        ("import types", "'types' is forbidden"),
        ("import webbrowser", "'webbrowser' is forbidden"),
        ("import __main__", "'__main__' is forbidden"),
        ("__import__('os')", "'__import__'"),
        ("x = __import__\nx('os')", "'__import__'"),
        ("__builtins__['open']", "'__builtins__'"),
        ("__builtins__.__dict__", "'__builtins__'"),
        ("__builtin__.eval", "'__builtin__'"),
        ("os.system('ls')", "'os'"),  # the user imported os in the notebook: agent code may still not use it
        ("sys.modules['os']", "'sys'"),
        ("environ['HOME']", "'environ'"),
        ("import requests", "'requests' is not authorized"),
        ("from requests import get", "'requests' is not authorized"),
        ("import shutil", "'shutil' is not authorized"),
        ("from . import x", "relative imports"),
    ],
    "attribute chains into forbidden modules": [
        ("import pandas as pd\npd.io.common.os.system('id')", "'os'"),
        ("from pandas.io import common\ncommon.os", "'os'"),
        ("from pandas import os", "'os'"),
        ("from pandas.io.common import os as o", "'os'"),
        ("import matplotlib.cbook as c\nc.subprocess.run(['id'])", "'subprocess'"),
        ("import random\nrandom._os.system('id')", "'_os'"),
        ("import collections\ncollections._sys.modules", "'_sys'"),
        ("import dataclasses\ndataclasses.sys", "'sys'"),
        ("import dataclasses\ndataclasses.builtins.eval", "'builtins'"),
        ("import dataclasses\ndataclasses.inspect.stack()", "module 'inspect'"),
        ("import typing\ntyping.sys.modules['os']", "'sys'"),
        ("import numpy as np\nnp.ctypeslib.load_library('x', '.')", "'ctypeslib'"),
        ("import numpy as np\nnp.f2py.compile('x')", "'f2py'"),
        ("import numpy.f2py", "'numpy.f2py' is forbidden"),
        ("import matplotlib.pyplot as plt\nplt.importlib.import_module('os')", "'importlib'"),
        ("import scipy\nscipy._importlib.import_module('os')", "'_importlib'"),
        ("import pandas as pd\npd.compat._optional.import_optional_dependency('os')", "import_optional_dependency"),
        ("import pyarrow.cffi", "'pyarrow.cffi' is forbidden"),
        ("import pyarrow as pa\npa.cffi.ffi", "'cffi'"),
        ("import pandas as pd\nm = pd.io.common\nm.os", "'os'"),
        ("import pandas as pd\ngetattr(pd.io.common, 'os')", "'os'"),
        ("import pandas as pd\ngetattr(pd.io.common, 'o' + 's')", "'os'"),
        ("import pandas as pd\nfor n in ['os', 'sys']:\n    getattr(pd.io.common, n)", "'os'"),
        ("import pandas as pd\npd.io.common.mmap", "module 'mmap'"),
        ("import pandas as pd\npd._libs", "private internal"),
        ("from sklearn.utils._testing import assert_run_python_script", "'sklearn.utils._testing' is forbidden"),
        ("from pandas.core import _numba", "private internals"),
        ("from IPython.display import publish_display_data", "active content"),
    ],
    "dunder attributes": [
        ("().__class__.__bases__[0].__subclasses__()", "'__bases__'"),
        ("[].__class__.__base__", "'__base__'"),
        ("object.__subclasses__()", "'__subclasses__'"),
        ("f.__globals__", "'__globals__'"),
        ("f.__code__.co_consts", "'__code__'"),
        ("f.__closure__", "'__closure__'"),
        ("print.__self__", "'__self__'"),
        ("m.__func__", "'__func__'"),
        ("x.__dict__", "'__dict__'"),
        ("type(x).__mro__", "'__mro__'"),
        ("x.__getattribute__('y')", "'__getattribute__'"),
        ("x.__reduce_ex__(2)", "'__reduce_ex__'"),
        ("e.__traceback__", "'__traceback__'"),
        ("x.__class__", "'__class__' is only allowed"),
        ("c = x.__class__\nc.__name__", "'__class__' is only allowed"),
        ("x.__init__", "'__init__'"),
        ("getattr(x, '__globals__')", "'__globals__'"),
        ("getattr(x, '__glo' + 'bals__')", "'__globals__'"),
        ("getattr(x, '_' * 2 + 'globals' + '_' * 2)", "'__globals__'"),
        ("getattr(x, ''.join(['__', 'globals', '__']))", "'__globals__'"),
        ("getattr(x, '__slabolg__'[::-1])", "'__globals__'"),
        ("getattr(x, f\"__{'glob'}als__\")", "'__globals__'"),
        ("getattr(x, chr(95) * 2 + 'dict' + chr(95) * 2)", "'__dict__'"),
        ("n = '__dict__'\ngetattr(x, n)", "'__dict__'"),
        ("hasattr(x, '__globals__')", "'__globals__'"),
        ("setattr(x, '__class__', int)", "'__class__'"),
        ("delattr(x, '__doc__')", "'__doc__'"),
        ("'{0.__class__}'.format(x)", "'__class__'"),
        ("'{0.__init__.__globals__}'.format(x)", "'__globals__'"),
        ("'{x.__class__.__base__}'.format(x=1)", "'__base__'"),
        ("'{0[a].__dict__}'.format(x)", "'__dict__'"),
        ("'{:{0.__class__.__base__}}'.format(x)", "'__base__'"),
        ("'{f.__globals__}'.format_map({'f': g})", "'__globals__'"),
        ("fmt = '{0.__glo' + 'bals__}'\nfmt.format(f)", "'__globals__'"),
        ("import string\nstring.Formatter().get_field('0.__globals__', (f,), {})", "'__globals__'"),
        ("x.__class__ = dict", "dunder attribute '__class__'"),
        ("f.__defaults__ = (1,)", "'__defaults__'"),
        ("del x.__doc__", "'__doc__'"),
        ("f.__kwdefaults__['a'] = 1", "'__kwdefaults__'"),
        ("__builtins__ = {}", "'__builtins__'"),
        ("import pandas as __builtins__", "'__builtins__'"),
        ("operator_attr = attrgetter('__class__.__base__')", "'__base__'"),
        ("df.apply('__class__')", "dunder method by name"),
        ("df.query('a.__class__.__base__')", "'__base__'"),
        ("df.eval('@x.__init__.__globals__')", "'__globals__'"),
    ],
    "frames and introspection": [
        ("g.gi_frame.f_globals", "'gi_frame'"),
        ("c.cr_frame", "'cr_frame'"),
        ("a.ag_frame", "'ag_frame'"),
        ("tb.tb_frame.f_back", "'tb_frame'"),
        ("frame.f_locals", "'f_locals'"),
        ("frame.f_builtins", "'f_builtins'"),
        ("g.gi_code", "'gi_code'"),
        ("import inspect", "'inspect' is forbidden"),
        ("import gc\ngc.get_objects()", "'gc' is forbidden"),
        ("import sys\nsys._getframe(1)", "'sys' is forbidden"),
        ("import traceback\ntraceback.walk_stack(None)", "'traceback' is not authorized"),
        ("import dataclasses\ndataclasses.inspect.currentframe()", "'currentframe'"),
        ("x = '{0.f_globals}'.format(frame)", "'f_globals'"),
    ],
    "eval, exec and friends": [
        ("eval('1+1')", "'eval'"),
        ("exec('x=1')", "'exec'"),
        ("compile('1', 'f', 'eval')", "'compile'"),
        ("f = eval\nf('1')", "'eval'"),
        ("globals()", "'globals'"),
        ("locals()", "'locals'"),
        ("vars(x)", "'vars'"),
        ("breakpoint()", "'breakpoint'"),
        ("input('name?')", "'input'"),
        ("help(len)", "'help'"),
        ("exit()", "'exit'"),
        ("quit()", "'quit'"),
        ("list(map(eval, ['1']))", "'eval'"),
        ("import dataclasses\ndataclasses.builtins.exec('1')", "'builtins'"),
        ("import pandas as pd\npd.eval('os.getcwd()')", "'os'"),
        ("df.query('@os.system(\"id\")')", "'os'"),
        ("df.query('__import__(\"os\")')", "'__import__'"),
    ],
    "IPython's own escapes": [
        ("!ls -la", "shell commands"),
        ("files = !ls", "shell commands"),
        ("%timeit 1", "magics"),
        ("x = %env", "magics"),
        ("%%bash\nls", "magics"),
        ("df?", "help syntax"),
        ("get_ipython()", "'get_ipython'"),
        ("get_ipython().system('ls')", "'get_ipython'"),
        ("ip = get_ipython\nip().kernel", "'get_ipython'"),
        ("x.run_line_magic('env', '')", "'run_line_magic'"),
        ("shell.run_cell('1')", "'run_cell'"),
        ("shell.user_ns['x']", "'user_ns'"),
        ("In[-1]", "'In'"),
        ("Out[3]", "'Out'"),
        ("_ih", "'_ih'"),
        ("_i3", "'_i3'"),
        ("import IPython\nIPython.get_ipython()", "'IPython' is forbidden"),
        ("from IPython import get_ipython", "'IPython' is forbidden"),
        ("import ipykernel", "'ipykernel' is forbidden"),
        ("from IPython.core.getipython import get_ipython", "'IPython.core.getipython' is forbidden"),
    ],
    "active content in the browser": [
        ("from IPython.display import Javascript", "active content"),
        ("import IPython.display as d\nd.Javascript('alert(1)')", "'Javascript'"),
        ("from IPython.display import display_javascript", "active content"),
        ("from IPython.display import IFrame", "active content"),
        ("HTML('<script>alert(1)</script>')", "active content"),
        ("HTML('<img src=x onerror=alert(1)>')", "active content"),
        ("HTML('<a href=\"javascript:alert(1)\">x</a>')", "active content"),
        ("HTML('<iframe src=\"https://example.com\"></iframe>')", "active content"),
        ("HTML('<svg onload=alert(1)>')", "active content"),
        ("HTML('<scr' + 'ipt>alert(1)</scr' + 'ipt>')", "active content"),
        ("HTML(f\"<div onclick='{code}'>x</div>\")", "active content"),
        ("Markdown('[x](javascript:alert(1))')", "active content"),
        ("display({'application/javascript': 'alert(1)'}, raw=True)", "active content"),
        ("page = '<body onload=\"steal()\">'", "active content"),
        ("class X:\n    def _repr_javascript_(self):\n        return 'alert(1)'", "_repr_javascript_"),
        ("class X:\n    def _repr_html_(self):\n        return '<script>alert(1)</script>'", "active content"),
        ("fig.update_layout(title='<img src=x onerror=alert(1)>')", "active content"),
    ],
    "secrets": [
        ("open('/proc/self/environ').read()", "secrets"),
        ("open('/proc/1/environ')", "secrets"),
        ("import pandas as pd\npd.read_csv('/proc/self/environ', sep='\\0')", "secrets"),
        ("open('.env').read()", "secrets"),
        ("open('config/.env.local').read()", "secrets"),
        ("import pandas as pd\npd.read_csv('~/.netrc')", "secrets"),
        ("open('/root/.ssh/id_rsa').read()", "secrets"),
        ("open('~/.aws/credentials')", "secrets"),
        ("open('~/.config/gcloud/application_default_credentials.json')", "secrets"),
        ("open('~/.cache/huggingface/token')", "secrets"),
        ("open('/home/u/.git-credentials')", "secrets"),
        ("open('/etc/shadow')", "secrets"),
        ("open('server.pem')", "secrets"),
        ("import numpy as np\nnp.loadtxt('/proc/self/environ')", "secrets"),
        ("import os\nos.environ['OPENAI_API_KEY']", "'os' is forbidden"),
        ("import os\nos.getenv('HF_TOKEN')", "'os' is forbidden"),
        ("import pandas as pd\npd.io.common.os.environ", "'environ'"),
        ("x.environ['KEY']", "'environ'"),
        ("x.getenv('KEY')", "'getenv'"),
        ("'{0.environ}'.format(m)", "'environ'"),
        ("open('../../home/me/.netrc')", "secrets"),
        ("open('/root/.bashrc', 'a')", "startup or system location"),
        ("open('/etc/cron.d/job', 'w')", "startup or system location"),
        ("open('/root/.bash_history').read()", "secrets"),
        ("open('~/.ipython/profile_default/history.sqlite', 'rb')", "secrets"),
        ("open('~/.local/share/jupyter/runtime/kernel-1.json')", "secrets"),
        ("import numpy as np\nnp.lib.stride_tricks.as_strided(np.zeros(1), shape=(10**6,), strides=(1,))",
         "raw memory"),
    ],
    "strings that are code": [
        ("import pandas as pd\ndf.style.env.from_string('{{ x }}').render()", "'from_string'"),
        ("t = df.style.env\nt.get_template('html.tpl')", "'get_template'"),
        ("tpl = '{{ cycler.__init__.__globals__.os }}'", "interpreter internals"),
        ("tpl = \"{{ ''|attr('__cla' ~ 'ss__') }}\"", "interpreter internals"),
        ("def f(x: \"__import__('os').system('id')\"): pass", "'__import__'"),
        ("def f(x) -> 'os.system(\"id\")': pass", "'os'"),
        ("y: 'eval(\"1\")' = 1", "'eval'"),
        ("import typing\ntyping.ForwardRef('getattr(x, y)')", "'getattr'"),
        ("import typing\ntyping.TypeVar('T', bound='exec(\"1\")')", "'exec'"),
        ("import matplotlib\nmatplotlib.use('module://antigravity')", "module to import"),
        ("import pandas as pd\npd.options.plotting.backend = 'antigravity'", "plotting backend"),
        ("import pandas as pd\npd.set_option('plotting.backend', 'this')", "plotting backend"),
        ("class A:\n    def __getattr__(self, n):\n        return super().__getattribute__('__dict__')", "'__dict__'"),
        ("import functools\nfunctools.reduce(getattr, ['__cla' + 'ss__'], x)", "builds dunder names"),
        ("import sqlite3\nc = sqlite3.connect(':memory:')\nc.load_extension('x')", "'load_extension'"),
        ("import timeit\ntimeit.timeit('1')", "'timeit' is forbidden"),
        ("import doctest", "'doctest' is forbidden"),
        ("import cProfile\ncProfile.run('1')", "'cProfile' is forbidden"),
        ("import jinja2", "'jinja2' is forbidden"),
        ("import logging.config", "'logging.config' is forbidden"),
    ],
    "other": [
        ("await thing()", "top-level await"),
        ("df.to_clipboard()", "clipboard"),
        ("import pandas as pd\npd.read_clipboard()", "clipboard"),
        ("open(0).read()", "file descriptor"),
        ("def f(:", "does not parse"),
        ("final_answer = 1", "belongs to the agent"),
    ],
}
DENY_CASES = [(family, code, reason) for family, cases in DENY.items() for code, reason in cases]


@pytest.mark.parametrize("family, code, reason", DENY_CASES, ids=[f"{f}: {c[:40]}" for f, c, _ in DENY_CASES])
def test_denied_with_a_reason(family, code, reason):
    ns = {"os": os, "sys": os.sys, "environ": os.environ, "final_answer": print, "df": pd.DataFrame({"a": [1]})}
    verdict = check(code, context=GuardContext(ns, hidden={"final_answer"}))
    assert verdict.decision == "deny", verdict.reasons
    assert reason in reasons(verdict), verdict.reasons
    assert all(r.startswith("line ") for r in verdict.reasons if "parse" not in r)
    denied = [f for f in verdict.findings if f.decision == "deny"]
    assert denied and all(("never allowed" in f.text or "can authorize it" in f.text) and "Instead:" in f.text
                          for f in denied)
    assert verdict.capabilities == []  # no grant can turn a deny into allow


def test_every_deny_family_has_several_cases():
    assert all(len(cases) >= 5 for cases in DENY.values())


# -- ask: (code, the capability that turns it into allow) -----------------------------------------------------------

ASK = [
    # writing files
    ("df.to_csv('out.csv')", "write_files"),
    ("df.to_parquet(path='out.parquet')", "write_files"),
    ("df.to_excel('out.xlsx')", "write_files"),
    ("df.to_pickle('out.pkl')", "write_files"),
    ("df.to_sql('t', con)", "write_files"),
    ("open('out.txt', 'w')", "write_files"),
    ("open('out.txt', mode='a')", "write_files"),
    ("open('out.txt', 'r+')", "write_files"),
    ("open('out.txt', m)", "write_files"),
    ("with open('log.txt', 'w') as f:\n    f.write('x')", "write_files"),
    ("import io\nio.open('x.txt', 'w')", "write_files"),
    ("import numpy as np\nnp.save('a.npy', arr)", "write_files"),
    ("import numpy as np\nnp.savetxt('a.txt', arr)", "write_files"),
    ("arr.tofile('a.bin')", "write_files"),
    ("import matplotlib.pyplot as plt\nplt.savefig('fig.png')", "write_files"),
    ("fig.savefig(name)", "write_files"),
    ("import polars as pl\npl.DataFrame({'a': [1]}).write_csv('a.csv')", "write_files"),
    ("import pyarrow.parquet as pq\npq.write_table(t, 'a.parquet')", "write_files"),
    ("from pathlib import Path\nPath('a.txt').write_text('x')", "write_files"),
    ("from pathlib import Path\n(Path('out') / 'a.txt').write_bytes(b'x')", "write_files"),
    ("from pathlib import Path\nPath('new').mkdir()", "write_files"),
    ("import shutil\nshutil.copy('a', 'b')", "write_files"),
    ("import json\njson.dump(d, open('d.json', 'w'))", "write_files"),
    ("df.to_csv('/tmp/elsewhere.csv')", "write_files"),
    # deleting files
    ("from pathlib import Path\nPath('a.txt').unlink()", "delete_files"),
    ("from pathlib import Path\nPath('d').rmdir()", "delete_files"),
    ("from pathlib import Path\nPath('a.txt').rename('b.txt')", "delete_files"),
    ("import shutil\nshutil.rmtree('d')", "delete_files"),
    ("import shutil\nshutil.move('a', 'b')", "delete_files"),
    # network
    ("import pandas as pd\npd.read_csv('https://example.com/a.csv')", "network"),
    ("import pandas as pd\npd.read_json('http://example.com/a.json')", "network"),
    ("import pandas as pd\npd.read_parquet('s3://bucket/a.parquet')", "network"),
    ("import pandas as pd\nurl = 'https://x.org/a.csv'\npd.read_csv(url)", "network"),
    ("import pandas as pd\npd.read_html('https://en.wikipedia.org/wiki/X')", "network"),
    ("import polars as pl\npl.read_csv('https://x.org/a.csv')", "network"),
    ("import urllib.request\nurllib.request.urlopen('https://x.org')", "network"),
    ("import requests\nrequests.get('https://x.org')", "network"),
    ("import seaborn as sns\nsns.load_dataset('iris')", "network"),
    ("from sklearn.datasets import fetch_openml\nfetch_openml('mnist_784')", "network"),
    ("import statsmodels.api as sm\nsm.datasets.get_rdataset('mtcars')", "network"),
    # reading outside the notebook's folder
    ("open('/etc/hostname').read()", "read_outside"),
    ("import pandas as pd\npd.read_csv('/data/other/a.csv')", "read_outside"),
    ("import pandas as pd\npd.read_csv('../sibling/a.csv')", "read_outside"),
    ("import pandas as pd\npd.read_csv('~/Downloads/a.csv')", "read_outside"),
    ("from pathlib import Path\nlist(Path.home().glob('*'))", "read_outside"),
    ("from pathlib import Path\nPath('/var/log').iterdir()", "read_outside"),
    # computed paths, attribute names, format strings, expressions
    ("getattr(x, name)", "computed_access"),
    ("hasattr(x, name)", "computed_access"),
    ("setattr(x, name, 1)", "computed_access"),
    ("import functools\nfunctools.reduce(getattr, ['a', 'b'], x)", "computed_access"),
    ("import pandas as pd\npd.read_csv(path)", "computed_access"),
    ("import pandas as pd\nfor f in files:\n    pd.read_csv(f)", "computed_access"),
    ("open(p).read()", "computed_access"),
    ("t = str(x) + '{}'\nt.format(y)", "computed_access"),
    ("df.query(expr)", "computed_access"),
    ("import pandas as pd\npd.eval(s)", "computed_access"),
    ("from operator import attrgetter\nattrgetter(n)", "computed_access"),
    # pickles
    ("import pandas as pd\npd.read_pickle('model.pkl')", "unpickle"),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "unpickle"),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=flag)", "unpickle"),
    ("import pickle\npickle.loads(blob)", "unpickle"),
    ("import joblib\njoblib.load('m.joblib')", "unpickle"),
    ("import pandas as pd\npd.read_hdf('a.h5')", "unpickle"),
    ("import pandas as pd\npd.HDFStore('a.h5')", "unpickle"),
    # other ways to write, read or connect
    ("import numpy as np\nnp.memmap('x.dat', dtype='f4', mode='w+', shape=(3,))", "write_files"),
    ("import numpy as np\nnp.memmap('x.dat', dtype='f4', shape=(3,))", "write_files"),  # the default mode is r+
    ("import numpy as np\nnp.load('a.npy', mmap_mode='r+')", "write_files"),
    ("import pyarrow as pa\npa.OSFile('a.bin', 'wb')", "write_files"),
    ("import pandas as pd\npd.io.common.get_handle('a.txt', 'w')", "write_files"),
    ("import polars as pl\npl.scan_csv('a.csv').sink_parquet('b.parquet')", "write_files"),
    ("import polars as pl\npl.sql(\"SELECT * FROM read_csv('/etc/passwd')\", eager=True)", "read_outside"),
    ("import polars as pl\npl.SQLContext().execute(q)", "computed_access"),
    ("import pandas as pd\npd.read_sql('select 1', 'postgresql://u:p@db.example.com/x')", "network"),
    ("import numpy as np\nnp.DataSource().open('https://x.org/a.csv')", "network"),
    # calls the guard must see through, and I/O functions passed around as values
    ("getattr(df, 'to_csv')('out.csv')", "write_files"),
    ("f = df.to_csv\nf('out.csv')", "write_files"),
    ("import functools\nfunctools.partial(df.to_csv, 'out.csv')()", "write_files"),
    ("import pandas as pd\nframes = list(map(pd.read_csv, names))", "computed_access"),
    ("list(map(open, names))", "computed_access"),
    ("from pandas import read_pickle\nlist(map(read_pickle, names))", "unpickle"),
    ("import pandas as pd\npd.read_csv = lambda *a, **k: None", "mutate_data"),
    ("import numpy as np\nsetattr(np, 'load', print)", "mutate_data"),
]


@pytest.mark.parametrize("code, capability", ASK, ids=[c[:50] for c, _ in ASK])
def test_asked_with_the_capability_that_would_allow_it(code, capability, tmp_path):
    policy = Policy(workdir=tmp_path)
    policy.authorized_imports += ["pathlib", "shutil", "urllib.request", "requests", "pickle", "joblib", "operator"]
    verdict = check(code, policy)
    assert verdict.decision == "ask", verdict.reasons
    assert capability in verdict.capabilities, verdict.reasons
    assert any(f"grant '{capability}' to allow" in r for r in verdict.reasons), verdict.reasons
    assert all("Instead:" in r for r in verdict.reasons)
    granted = check(code, policy.with_grants(*verdict.capabilities))
    assert granted.decision == "allow", granted.reasons
    assert any("is granted" in r for r in granted.reasons)


# -- allow: ordinary code --------------------------------------------------------------------------------------------

ALLOW = [
    "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndf.groupby('a').sum()",
    "import numpy as np\nfrom scipy import stats\nstats.ttest_ind(np.arange(5), np.arange(5) + 1)",
    "import scipy\nscipy.signal.find_peaks([1, 3, 1])",
    "from scipy import signal, io as sio\nsignal.detrend([1, 2, 3])",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
    "import matplotlib as mpl\nmpl.rcParams['figure.figsize'] = (8, 4)",
    "import pandas as pd\npd.options.display.max_rows = 100\npd.set_option('display.width', 120)",
    "class Model(Base):\n    def __init__(self, x):\n        super().__init__()\n        self.x = x",
    "class M(Base):\n    def __init__(self, x):\n        Base.__init__(self)\n        super(M, self).__init__()",
    "class P:\n    __slots__ = ('x',)\n    __hash__ = None\n    def __repr__(self):\n        return 'P'",
    "class C:\n    def clone(self):\n        return self.__class__()\n    def name(self):\n        return self.__class__.__name__",
    "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass P:\n    x: int\n"
    "    def __post_init__(self):\n        object.__setattr__(self, 'x', 1)",
    "print(f.__name__, f.__doc__, f.__qualname__, f.__module__, pd.__version__, x.__class__.__name__)",
    "print(__name__, __doc__)\n__all__ = ['x']",
    "len(x)\nx.__len__()\nx.__getitem__(0)\n(1).__add__(2)",
    "[x * 2 for x in range(10) if (y := x) > 3]",
    "{k: v for k, v in d.items()}\n{v for v in s}\n(g for g in range(3))",
    "match v:\n    case {'a': 1}:\n        pass\n    case [x, *rest]:\n        pass",
    "'{} {:.2f}'.format('a', 1.5)\n'{0} {1!r:>10}'.format(1, 2)\n'{name}'.format(name='x')",
    "'{0.shape} {0.columns}'.format(df)\n'{0[a]}'.format({'a': 1})",
    "f'{x!r:>{width}} {y:.2%} {z.real}'",
    "'%s is %d' % ('a', 1)",
    "import re\nre.findall(r'\\d+', 'a1b22')\nre.sub('a', 'b', s)",
    "async def f():\n    await g()",
    "s = '''\n!not a shell command\n%not a magic\n'''",
    "import pandas as pd\npd.read_csv('data.csv')\npd.read_parquet('sub/a.parquet')",
    "import pandas as pd\nfrom io import StringIO\npd.read_csv(StringIO('a,b\\n1,2'))",
    "import pandas as pd\npd.read_json('[{\"a\": 1}]')",
    "with open('data.csv') as f:\n    f.readline()",
    "open('./notes/a.txt', 'rb').read()",
    "import io\nbuf = io.StringIO()\ndf.to_csv(buf)\ndf.to_csv()\ndf.to_json()\ndf.to_html()\ndf.to_string()",
    "import io\nb = io.BytesIO()\nfig.savefig(b, format='png')",
    "import json\njson.dumps({'a': 1})\njson.loads('{}')",
    "import numpy as np\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=False)",
    "for m in ['mean', 'std']:\n    getattr(df, m)()\n[getattr(df, c) for c in ('a', 'b')]",
    "getattr(df, 'mean')()\nhasattr(df, 'groupby')",
    "df.query('a > 1 and b == \"x\"')\ndf.eval('c = a + b')\ndf.query('a > @threshold')",
    "df.apply('sum')\ndf.agg(['mean', 'max'])\ndf.transform(lambda s: s * 2)",
    "from IPython.display import display, Markdown, HTML\ndisplay(Markdown('**x**'))\n"
    "display(HTML('<b>x</b><table><tr><td>1</td></tr></table>'))",
    "display(df)",
    "import polars as pl\nimport pyarrow as pa\npl.DataFrame({'a': [1]})\npa.table({'a': [1]})",
    "import statistics, itertools, functools, collections, datetime, decimal, fractions, string, textwrap",
    "from typing import Any, Optional\nx: Optional[int] = None",
    "import time\ntime.time()\ntime.sleep(0)",
    "try:\n    1 / 0\nexcept ZeroDivisionError as err:\n    print(type(err).__name__)",
    "def outer():\n    n = 0\n    def inner():\n        nonlocal n\n        n += 1\n    return inner",
    "lambda row: row['a'] * 2",
    "x = df['a'].values\nx = x.copy()\nx[0] = 1",
    "import random\nrandom.seed(0)\nrandom.random()",
    "sorted(d.items(), key=lambda kv: kv[1])[::-1]",
    "print('see https://example.com for details')",
    "import numpy as np\nnp.testing.assert_allclose(1, 1)",
    "import pandas as pd\npd.api.types.is_numeric_dtype(df['a'])",
    "from collections import Counter\nCounter('abc').most_common(1)",
    "def f(x: 'pd.DataFrame', y: 'list[int]' = None) -> 'Optional[str]':\n    return None",
    "import matplotlib\nmatplotlib.use('Agg')\nmatplotlib.use('module://matplotlib_inline.backend_inline')",
    "import pandas as pd\npd.options.plotting.backend = 'matplotlib'",
    "import polars as pl\nctx = pl.SQLContext(frames={'t': pl.DataFrame({'a': [1]})})\n"
    "ctx.execute('SELECT a FROM t WHERE a > 0', eager=True)",
    "import numpy as np\nnp.memmap('x.dat', dtype='f4', mode='r', shape=(3,))",
    "import pandas as pd\npd.read_sql('select 1', con)\npd.read_sql('select 1', 'sqlite:///data.db')",
    "import pandas as pd\ndf.style.highlight_max().format('{:.2f}').to_html()",
    "print('the __init__ method and __repr__ are dunder methods')",
]


@pytest.mark.parametrize("code", ALLOW, ids=[c[:50] for c in ALLOW])
def test_ordinary_code_is_allowed(code, tmp_path):
    verdict = check(code, Policy(workdir=tmp_path))
    assert verdict.decision == "allow", verdict.reasons


# -- the policy is data ----------------------------------------------------------------------------------------------


def test_authorized_imports_are_data():
    policy = Policy(authorized_imports=["pandas", "requests.*"])
    assert check("import requests.adapters", policy).decision == "allow"
    assert check("import requests", policy).decision == "allow"
    assert check("import numpy", policy).decision == "deny"
    assert check("import pandas.plotting", policy).decision == "allow"  # a package authorizes its submodules
    assert check("import pandasx", policy).decision == "deny"
    assert check("import os", Policy(authorized_imports=["*"])).decision == "deny"  # never grantable
    assert check("import anything_at_all", Policy(authorized_imports=["*"])).decision == "allow"
    assert check("import numpy.f2py", Policy(authorized_imports=["numpy.*"])).decision == "deny"


ABSENT = "smol_magic_absent_pkg_4e1d"  # certainly not installed


def test_an_authorized_module_that_is_not_installed_is_not_called_forbidden():
    # `from scipy import signal` without scipy was refused as "a module that is not allowed ... never allowed"
    assert importlib.util.find_spec(ABSENT) is None
    policy = Policy(authorized_imports=[f"{ABSENT}.*"])
    for code in (f"from {ABSENT} import signal", f"import {ABSENT}\n{ABSENT}.signal.find_peaks([1, 3, 1])",
                 f"from {ABSENT}.stats import inspect"):
        verdict = check(code, policy)
        assert verdict.decision == "allow", (code, verdict.reasons)
    # an installed package that does not hold such a module is still refused
    verdict = check("from pandas import signal", Policy())
    assert verdict.decision == "deny" and "looks like a module" in reasons(verdict)


def test_an_authorized_module_that_is_not_installed_runs_and_says_so():
    model = ScriptedModel([f"```python\nfrom {ABSENT} import signal\n```", "```python\nfinal_answer('ok')\n```"])
    agent = CodeAgent(model=model, policy=Policy(authorized_imports=[f"{ABSENT}.*"]))
    assert agent.run("Find the peaks.") == "ok"
    observation = model.requests[1][-1]["content"]
    assert f"ModuleNotFoundError: No module named '{ABSENT}'" in observation
    assert "not allowed" not in observation


def test_default_imports_are_the_documented_list():
    assert {"math", "statistics", "datetime", "re", "json", "collections", "itertools", "functools", "random",
            "string", "decimal", "fractions", "dataclasses", "typing", "textwrap", "io", "pandas", "numpy", "scipy",
            "matplotlib", "seaborn", "sklearn", "statsmodels", "plotly", "polars", "pyarrow"} <= set(
        guard.DEFAULT_AUTHORIZED_IMPORTS)
    for module in guard.DEFAULT_AUTHORIZED_IMPORTS:
        assert not guard.module_forbidden(module), module


def test_capabilities_are_named_and_checked():
    assert set(guard.CAPABILITIES) == {"write_files", "delete_files", "network", "read_outside", "computed_access",
                                       "mutate_data", "unpickle"}
    with pytest.raises(ValueError, match="unknown capabilities.*write_file"):
        Policy(allow=["write_file"])
    policy = Policy(allow=["network"]).with_grants("write_files", imports=["requests"])
    assert policy.allow == {"network", "write_files"} and "requests" in policy.authorized_imports
    assert Policy().allow == frozenset()  # the original is unchanged


def test_grants_cannot_turn_deny_into_allow():
    everything = Policy(allow=set(guard.CAPABILITIES), authorized_imports=["*"])
    for code in ("import os", "eval('1')", "x.__globals__", "open('.env')", "get_ipython()",
                 "HTML('<script>1</script>')", "g.gi_frame"):
        assert check(code, everything).decision == "deny", code


def test_guard_off_allows_everything_and_says_so():
    verdict = check("import os", Policy(enabled=False))
    assert verdict.decision == "allow" and "off" in verdict.reasons[0]


def test_mixed_findings_deny_wins_and_asks_are_listed():
    verdict = check("import os\ndf.to_csv('x.csv')")
    assert verdict.decision == "deny"
    assert verdict.reasons[0].startswith("line 1: import of 'os'")
    assert any("write_files" in r for r in verdict.reasons)


def test_a_partly_granted_action_still_asks_for_the_rest(tmp_path):
    code = "df.to_csv('x.csv')\nopen('/etc/hostname').read()"
    verdict = check(code, Policy(workdir=tmp_path, allow={"write_files"}))
    assert verdict.decision == "ask" and verdict.capabilities == ["read_outside"]


def test_workdir_decides_inside_and_outside(tmp_path):
    (tmp_path / "data").mkdir()
    inside = Policy(workdir=tmp_path)
    assert check(f"open({str(tmp_path / 'data' / 'a.csv')!r})", inside).decision == "allow"
    assert check("open('data/a.csv')", inside).decision == "allow"
    assert check("open('data/../../x.csv')", inside).decision == "ask"
    assert check(f"open({str(tmp_path / 'data' / 'a.csv')!r})", Policy(workdir=tmp_path / "data" / "x")).decision \
        == "ask"
    (tmp_path / "escape").symlink_to("/etc")
    assert check("open('escape/hostname')", inside).capabilities == ["read_outside"]


def test_paths_known_through_pathlib_and_the_namespace(tmp_path):
    policy = Policy(workdir=tmp_path, authorized_imports=guard.DEFAULT_AUTHORIZED_IMPORTS + ["pathlib"])
    allowed = [
        "from pathlib import Path\nimport pandas as pd\npd.read_csv(Path('data') / 'a.csv')",
        "from pathlib import Path\nimport pandas as pd\nfor f in Path('data').glob('*.csv'):\n    pd.read_csv(f)",
        "from pathlib import Path\np = Path('a.txt')\np.read_text()\np.with_suffix('.csv').exists()",
        "import pandas as pd\nfor name in ['a.csv', 'b.csv']:\n    pd.read_csv(name)",
        "import pandas as pd\npd.read_csv(f'data/{year}.csv') if False else None" if False else "x = 1",
    ]
    for code in allowed:
        assert check(code, policy).decision == "allow", (code, check(code, policy).reasons)
    ns = {"p": Path("data.csv"), "secret": str(Path.home() / ".netrc"), "buf": io.StringIO()}
    ctx = GuardContext(ns)
    assert check("import pandas as pd\npd.read_csv(p)", policy, ctx).decision == "allow"
    assert check("import pandas as pd\npd.read_csv(secret)", policy, ctx).decision == "deny"
    assert check("df.to_csv(buf)", policy, ctx).decision == "allow"
    home = check("from pathlib import Path\n(Path.home() / '.aws' / 'credentials').read_text()", policy)
    assert home.decision == "deny" and "secrets" in reasons(home)


# -- the user's data survives ----------------------------------------------------------------------------------------


class Estimator:
    def get_params(self):
        return {}

    def fit(self, X, y=None):
        return self


@pytest.fixture
def ctx():
    ns = {
        "df": pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}), "arr": np.arange(10), "lst": [1, 2, 3],
        "d": {"k": [1]}, "s": {1, 2}, "i": 3, "flag": True, "nothing": None, "name": "short", "text": "x" * 500,
        "pd": pd, "np": np, "model": Estimator(), "mine": [1], "view": np.zeros((5, 5))[1:],
        "fn": lambda v: v, "final_answer": print, "_private": [1],
    }
    return GuardContext(ns, agent_names={"mine"}, protected={"name"}, hidden={"final_answer"})


DATA_ASK = [
    ("df = df.dropna()", "rebinds the user's variable 'df'"),
    ("del df", "deletes the user's variable 'df'"),
    ("df['c'] = 1", "assigns an item of df['c']"),
    ("df.loc[0, 'a'] = 9", "in place"),
    ("df.iloc[0, 0] += 1", "in place"),
    ("df.columns = ['x', 'y']", "sets an attribute"),
    ("del df['a']", "deletes an item"),
    ("df.sort_values('a', inplace=True)", "inplace=True"),
    ("df['a'].fillna(0, inplace=True)", "inplace=True"),
    ("df.insert(0, 'z', 1)", "df.insert()"),
    ("df.pop('a')", "df.pop()"),
    ("df.update(other)", "df.update()"),
    ("lst.append(4)", "lst.append()"),
    ("lst.sort()", "lst.sort()"),
    ("lst += [4]", "lst += [4]"),
    ("d['k'].append(2)", "d['k'].append()"),
    ("d.update(x=1)", "d.update()"),
    ("d.setdefault('z', 0)", "d.setdefault()"),
    ("s.add(3)", "s.add()"),
    ("arr[0] = 1", "arr[0]"),
    ("arr += 1", "arr += 1"),
    ("arr.sort()", "arr.sort()"),
    ("arr.fill(0)", "arr.fill()"),
    ("np.random.shuffle(arr)", "np.random.shuffle(arr)"),
    ("np.add(arr, 1, out=arr)", "out=arr"),
    ("np.copyto(arr, 0)", "np.copyto(arr, 0)"),
    ("x = arr\nx[0] = 1", "'arr'"),
    ("x = d['k']\nx.append(1)", "'d'"),
    ("for row in lst:\n    row += 1\nfor item in d.values():\n    pass\nfor v in d['k']:\n    v.x = 1", "'d'"),
    ("model.fit(X, y)", "model.fit()"),
    ("setattr(df, 'name', 'x')", "setattr(df, ...)"),
    ("delattr(model, 'x')", "delattr(model, ...)"),
    ("def f(frame):\n    frame['z'] = 1\nf(df)", "f() changes its argument df"),
    ("def f():\n    df['z'] = 1", "'df'"),
    ("def f():\n    global df\n    df = None", "rebinds the user's variable 'df'"),
    ("def df():\n    pass", "rebinds the user's variable 'df'"),
    ("class lst:\n    pass", "rebinds the user's variable 'lst'"),
    ("import numpy as pd", "rebinds the user's variable 'pd'"),
    ("from pandas import DataFrame as np", "rebinds the user's variable 'np'"),
    ("for df in frames:\n    pass", "rebinds the user's variable 'df'"),
    ("with open('a') as df:\n    pass", "rebinds the user's variable 'df'"),
    ("try:\n    pass\nexcept Exception as df:\n    pass", "'df'"),
    ("[df := 1]", "rebinds the user's variable 'df'"),
    ("[(df := x) for x in range(3)]", "rebinds the user's variable 'df'"),
    ("match v:\n    case [df, *lst]:\n        pass", "'df'"),
    ("fn = None", "rebinds the user's variable 'fn'"),
    ("text = 'new'", "rebinds the user's variable 'text'"),
]


@pytest.mark.parametrize("code, reason", DATA_ASK, ids=[c[:40] for c, _ in DATA_ASK])
def test_changing_the_users_data_asks(code, reason, ctx):
    verdict = check(code, context=ctx)
    assert verdict.decision == "ask", verdict.reasons
    assert verdict.capabilities == ["mutate_data"], verdict.reasons
    assert reason in reasons(verdict), verdict.reasons
    assert check(code, Policy(allow={"mutate_data"}), ctx).decision == "allow"


DATA_FREE = [
    "import pandas as pd\nimport numpy as np",  # re-running imports of the same modules
    "from pandas import DataFrame",
    "i = 4\nflag = False\nnothing = 1\nfor i in range(3):\n    pass",  # plain values are free
    "mine.append(2)\nmine = []",  # the agent's own variable
    "_private.append(1)",
    "df2 = df.copy()\ndf2['c'] = 1\ndf2.sort_values('a', inplace=True)",
    "x = df['a'] * 2\ny = arr.reshape(2, 5)\nz = lst + [4]\nw = {**d, 'n': 1}",
    "df.head()\ndf.describe()\ndf.groupby('a').sum()\narr.mean()\nlst.index(1)\nd.get('k')\ns | {3}",
    "df.add(1)\ndf.sort_values('a')\ndf.drop(columns='a')\ndf.fillna(0, inplace=False)",
    "def f(frame):\n    frame = frame.copy()\n    return frame\nf(df)",
    "def g(frame):\n    return frame['a'].sum()\ng(df)",
    "class K:\n    def __init__(self, df):\n        self.df = df\n        self.df2 = df.copy()",
    "def h():\n    df = None\n    return df",
    "[x for df in range(3) for x in [df]]",  # comprehension variables are local
    "pd.options.display.max_rows = 5\nnp.set_printoptions(precision=3)",
    "model.predict(X)\nmodel.get_params()",
    "final_answer(df.shape)",
    "import pandas as pd\npd = pd",
]


@pytest.mark.parametrize("code", DATA_FREE, ids=[c[:40] for c in DATA_FREE])
def test_harmless_uses_of_the_users_data_are_allowed(code, ctx):
    verdict = check(code, context=ctx)
    assert verdict.decision == "allow", verdict.reasons


def test_protected_names_need_a_person_whatever_is_granted(ctx):
    for code in ("name = 'other'", "del name", "for name in 'ab':\n    pass", "name += 'x'"):
        verdict = check(code, Policy(allow=set(guard.CAPABILITIES)), ctx)
        assert verdict.decision == "ask", (code, verdict.reasons)
        assert verdict.capabilities == [] and "protected with --protect" in verdict.reasons[0]
        assert "no capability grants it" in verdict.reasons[0]


def test_without_a_namespace_data_rules_are_off():
    assert check("df = 1\ndel lst\narr[0] = 1").decision == "allow"


def test_rebinding_the_agents_tools_is_denied(ctx):
    assert check("final_answer = print", context=ctx).decision == "deny"
    assert check("def final_answer(x):\n    pass", context=ctx).decision == "deny"


def test_reasons_say_when_undo_cannot_restore(ctx):
    model = check("model.fit(X, y)", context=ctx)
    assert model.irreversible and "undo cannot restore it" in model.reasons[0]
    view = check("view[0] = 1", context=ctx)
    assert view.irreversible and "view into another array" in view.reasons[0]
    frame = check("df['c'] = 1", context=ctx)
    assert not frame.irreversible and "undo" not in frame.reasons[0]
    rebind = check("df = 1", context=ctx)
    assert not rebind.irreversible  # the old object is kept: a rebinding can be undone
    custom = GuardContext(ctx.namespace, can_undo=lambda value: (False, "undo is off"))
    assert "undo is off" in check("df['c'] = 1", context=custom).reasons[0]


def test_undoable():
    assert guard.undoable(pd.DataFrame({"a": [1]}))[0]
    assert guard.undoable(np.arange(3))[0]
    assert guard.undoable([1, 2])[0] and guard.undoable({"a": 1})[0]
    assert not guard.undoable(Estimator())[0]
    assert not guard.undoable(np.arange(10)[2:])[0]
    ok, why = guard.undoable(np.zeros(1), ) if False else (False, "")
    big = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(guard.UNDO_MAX_BYTES,), strides=(0,))
    assert not guard.undoable(big)[0]


# -- verdicts: what the loop, the card and the memory get -------------------------------------------------------------


def test_verdict_is_a_memory_verdict_and_round_trips(ctx):
    verdict = check("df.to_csv('x.csv')\ndf['a'] = 0", context=ctx)
    assert isinstance(verdict, Verdict) and verdict.decision == "ask"
    assert verdict.capabilities == ["mutate_data", "write_files"]
    step = ActionStep(step_number=1, code="x", verdict=verdict)
    memory = AgentMemory(steps=[step])
    again = AgentMemory.from_json(memory.to_json())
    assert again.steps[0].verdict.decision == "ask" and again.steps[0].verdict.reasons == verdict.reasons
    assert json.loads(memory.to_json())["steps"][0]["verdict"] == {"decision": "ask", "reasons": verdict.reasons}


def test_findings_are_structured():
    verdict = check("import os\ndf.to_csv('x.csv')")
    deny, ask = verdict.findings[0], verdict.findings[-1]
    assert (deny.decision, deny.line, deny.capability) == ("deny", 1, None)
    assert (ask.decision, ask.line, ask.capability) == ("ask", 2, "write_files")
    assert ask.instead and "keep the result in a variable" in ask.text


def test_long_lists_of_findings_are_cut():
    code = "\n".join(f"import os{i}" for i in range(40))
    verdict = check(code)
    assert verdict.decision == "deny" and len(verdict.reasons) == 13 and "more findings" in verdict.reasons[-1]


def test_pathological_code_is_refused_not_crashed():
    deep = "x = " + "(" * 200 + "1" + ")" * 200  # parentheses nest nothing: plain code
    assert (check(deep).decision, check(deep).reasons) == ("allow", [])
    nested = "\n".join("    " * i + "if x:" for i in range(100)) + "\n" + "    " * 100 + "pass"
    assert check(nested).decision == "deny" and "does not parse" in check(nested).reasons[0]
    long_sum = "x = " + "+".join(["a"] * 20000)  # Python's own parser gives up
    assert check(long_sum).decision == "deny" and "cannot be parsed" in check(long_sum).reasons[0]
    deep_ifs = "x = " + "1 if y else " * 900 + "2"  # parses, but too deep for the guard's walk
    assert check(deep_ifs).decision == "deny" and "nested too deeply" in check(deep_ifs).reasons[0]
    assert "null bytes" in check("x = '\0'").reasons[0]
    assert check("").decision == "allow"


def test_the_guard_is_fast_enough_for_every_action():
    line = "summary = sales.groupby('region')['revenue'].agg(['sum', 'mean']).reset_index()\n"
    code = "import pandas as pd\n" + line * 199
    check(code)
    start = time.perf_counter()
    for _ in range(5):
        check(code)
    per_check = (time.perf_counter() - start) / 5
    assert per_check < 0.1, per_check  # bench/guard.py measures it properly; this catches a blow-up


# -- what reaches the browser and the model -----------------------------------------------------------------------------


def test_sanitize_html_keeps_tables_and_drops_active_content():
    table = pd.DataFrame({"a": [1, 2]}).to_html()
    assert guard.sanitize_html(table).count("<td>") == table.count("<td>")
    styled = "<style>.x { color: red; } td > b { x: 1 }</style><b class=\"x\">bold</b>"
    assert guard.sanitize_html(styled) == styled
    for bad in ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>x</a>",
                "<a href=' jAvA\tscript:alert(1)'>x</a>", "<iframe src='https://x'></iframe>",
                "<svg><script>alert(1)</script></svg>", "<svg onload=alert(1)></svg>",
                "<object data='x.swf'></object>", "<meta http-equiv='refresh' content='0;url=https://x'>",
                "<form action='https://x'><input name=a></form>", "<div style=\"background:url(javascript:x)\">",
                "<svg><animate attributeName=href values=javascript:alert(1) /></svg>",
                "<style>@import url(https://x/x.css)</style>", "<base href='https://x/'>",
                "<iframe srcdoc='<script>alert(1)</script>'></iframe>"):
        clean = guard.sanitize_html(bad).lower()
        assert not any(s in clean for s in ("<script", "onerror", "onload", "javascript:", "<iframe", "<object",
                                           "<meta", "<form", "<base", "@import", "srcdoc")), (bad, clean)


def test_sanitized_matplotlib_svg_still_displays():
    import xml.etree.ElementTree as ET

    import matplotlib
    from matplotlib.figure import Figure

    from smol_magic.ui.html import output_html

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([1, 2, 3], [1, 4, 9], label="growth")
    ax.fill_between([1, 2], [0, 1])
    ax.set_title("Revenue by region")
    ax.legend()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>, as well as paths
        fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    clean = guard.sanitize_html(svg)
    # an <img> or a notebook renders it as XML: it must parse, namespaces and all
    root = ET.fromstring(clean)
    ns = "{http://www.w3.org/2000/svg}"
    for tag in ("path", "use", "clipPath", "text", "g"):
        assert len(root.findall(f".//{ns}{tag}")) == svg.count(f"<{tag} ") + svg.count(f"<{tag}>"), tag
    assert "Revenue by region" in clean and 'clip-path="url(#' in clean and 'viewBox="' in clean
    assert clean.count('xlink:href="#') == svg.count('xlink:href="#') > 0
    bundle = {"output_type": "display_data", "data": {"image/svg+xml": svg.replace("<svg ", "<svg onload=\"x()\" ", 1)}}
    shown = output_html(bundle)
    assert "onload" not in shown and shown.count("<path") == svg.count("<path")
    assert output_html({"output_type": "display_data", "data": {"text/html": "<b>hi</b><script>x()</script>"}}) == \
        '<div style="overflow:auto"><b>hi</b></div>'


def test_sanitize_outputs_drops_javascript_bundles():
    outputs = [
        {"output_type": "display_data", "data": {"application/javascript": "alert(1)"}, "metadata": {}},
        {"output_type": "display_data", "data": {"text/html": "<b>x</b><script>1</script>", "text/plain": "x"},
         "metadata": {}},
        {"output_type": "display_data", "data": {"text/markdown": "[x](javascript:alert(1))"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "<script>is just text here</script>"},
    ]
    clean = guard.sanitize_outputs(outputs)
    assert clean[0]["data"] == {"text/plain": "[active content removed by the guard]"}
    assert clean[1]["data"] == {"text/html": "<b>x</b>", "text/plain": "x"}
    assert "javascript" not in clean[2]["data"]["text/markdown"]
    assert clean[3] == outputs[3]


def test_redact_secrets():
    env = {"OPENAI_API_KEY": "sk-abcdefgh12345", "HF_TOKEN": "hf_zyxwvut987", "HOME": "/root", "PASSWORD": "short"}
    text = "key sk-abcdefgh12345 and hf_zyxwvut987 in /root"
    assert guard.redact_secrets(text, env) == "key [redacted secret] and [redacted secret] in /root"
    assert guard.redact_secrets("nothing here", env) == "nothing here"


def test_findings_do_not_echo_secrets(monkeypatch):
    # the guard quotes the paths and URLs it works out, here from the user's variables: the secret
    # a user copied from the environment into a variable is read by the guard, and must not be echoed
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-in-env")
    context = GuardContext(namespace={"key": "sk-canary-in-env", "url": "https://x.example/?t=sk-canary-in-env"})
    for code in ("open(key, 'w').write('x')", "import pandas as pd\npd.read_csv(url)",
                 "import pandas as pd\npd.read_csv(f'/etc/{key}')"):
        verdict = check(code, Policy(), context)
        assert verdict.decision == "ask" and "[redacted secret]" in reasons(verdict), (code, verdict.reasons)
        assert "sk-canary-in-env" not in json.dumps(verdict.reasons)
        assert all("sk-canary-in-env" not in f.message for f in verdict.findings)


def test_check_accepts_the_same_code_twice_and_is_pure():
    code = ("import pandas as pd\ndf.to_csv('x.csv')\nname = 'a' + 'b'\nrows = [p for p in ['x.csv', 'y.csv']]\n"
            "def f(frame, col='c'):\n    frame[col] = 1\n    return getattr(frame, name)\nf(df)")
    context = GuardContext(namespace={"df": pd.DataFrame({"a": [1]})})
    first, second = check(code, context=context), check(code, context=context)
    assert first.decision == "ask" and first.reasons == second.reasons
    tree = ast.parse(code)
    before = ast.dump(tree, include_attributes=True)
    given = check(code, context=context, tree=tree)  # the caller's tree: judged, not changed
    assert ast.dump(tree, include_attributes=True) == before
    assert given.reasons == first.reasons
    assert check("x = 1", tree=ast.parse("import os")).decision == "deny"  # the tree is what is judged

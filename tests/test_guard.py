"""The first guard: what it refuses, and ordinary analysis code it must let through."""

from __future__ import annotations

import pytest

from smol_magic.guard import Policy, check

DENIED = {
    "import os": "'os' is forbidden",
    "import os.path as p": "'os.path' is forbidden",
    "from os import system": "'os' is forbidden",
    "from subprocess import run as r": "'subprocess' is forbidden",
    "import sys": "'sys' is forbidden",
    "import importlib": "'importlib' is forbidden",
    "import builtins": "'builtins' is forbidden",
    "from pandas import os": "'os' is forbidden",
    "import requests": "'requests' is not authorized",
    "__import__('os')": "'__import__' is not allowed",
    "eval('1+1')": "'eval' is not allowed",
    "exec('x=1')": "'exec' is not allowed",
    "compile('1', 'f', 'eval')": "'compile' is not allowed",
    "f = eval\nf('1')": "'eval' is not allowed",
    "__builtins__['open']": "'__builtins__' is not allowed",
    "().__class__.__bases__[0].__subclasses__()": "dunder attribute '__class__'",
    "x.__dict__['a'] = 1": "dunder attribute '__dict__'",
    "getattr(x, '__globals__')": "dunder attribute '__globals__' is not allowed",
    "getattr(x, name)": "computed attribute name",
    "get_ipython().system('ls')": "'get_ipython' is not allowed",
    "!ls -la": "shell commands are not allowed",
    "%timeit 1": "IPython magics are not allowed",
    "%%bash\nls": "IPython magics are not allowed",
    "await thing()": "top-level await",
}

ALLOWED = [
    "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndf.groupby('a').sum()",
    "import numpy as np\nfrom scipy import stats\nstats.ttest_ind(np.arange(5), np.arange(5) + 1)",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])",
    "class Model(Base):\n    def __init__(self, x):\n        super().__init__()\n        self.x = x",
    "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int",
    "print(f.__name__, f.__doc__, pd.__version__)",
    "[x * 2 for x in range(10) if (y := x) > 3]",
    "match v:\n    case {'a': 1}:\n        pass",
    "'{} {:.2f}'.format('a', 1.5)",
    "import re\nre.findall(r'\\d+', 'a1b22')",
    "async def f():\n    await g()",
    "s = '''\n!not a shell command\n%not a magic\n'''",
]


@pytest.mark.parametrize("code, reason", DENIED.items())
def test_denied_with_a_reason(code, reason):
    verdict = check(code)
    assert verdict.decision == "deny"
    assert any(reason in r for r in verdict.reasons), verdict.reasons


@pytest.mark.parametrize("code", ALLOWED)
def test_ordinary_code_is_allowed(code):
    verdict = check(code)
    assert verdict.decision == "allow", verdict.reasons


def test_authorized_imports_are_data():
    policy = Policy(authorized_imports=["pandas", "requests.*"])
    assert check("import requests.adapters", policy).decision == "allow"
    assert check("import numpy", policy).decision == "deny"
    assert check("import os", Policy(authorized_imports=["*"])).decision == "deny"  # never grantable
    assert check("import anything_at_all", Policy(authorized_imports=["*"])).decision == "allow"


def test_guard_off_allows_everything_and_says_so():
    verdict = check("import os", Policy(enabled=False))
    assert verdict.decision == "allow" and "off" in verdict.reasons[0]

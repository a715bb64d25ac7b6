"""Secret redaction: no run of 8 characters of a secret value reaches the model, a record or a trace.

What counts as a secret: the values of secret-looking environment variables
(``*KEY*``, ``*TOKEN*`` ...), and the user's values that look like credentials
(a known key prefix such as ``sk-`` or ``hf_``, a name such as ``token`` or
``password``, or a long high-entropy string), found in the namespace by
``find_secrets`` and registered for the life of the process.

Redaction is by content, not by exact match: pandas shortens a cell, a
traceback quotes part of a line, code prints a key in two halves. Any run of
``WINDOW`` characters of a secret is replaced, wherever it appears (see
``Secrets`` for how a long text is scanned quickly).
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from collections import Counter
import operator
from itertools import chain, compress, islice, repeat
from typing import Any, Iterable, Mapping

WINDOW = 8  # characters of a secret that may not appear together
MARK = "[redacted secret]"
MAX_SECRET_CHARS = 20_000  # longer strings are data, not credentials
_ANCHOR = WINDOW // 2
_CHUNK = re.compile(r".{%d}" % _ANCHOR, re.S)  # a text's chunks at multiples of _ANCHOR

# Environment variable names that hold credentials.
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE", re.I)
# Variable (or dict key, or column) names that say "this is a credential", whatever the value looks like.
_STRONG_NAME = re.compile(r"token|secret|passw|pwd|api_?key|apikey|access_?key|private_?key|credential|bearer|auth",
                          re.I)
# Weaker names ("key", "creds"): the value must look like a credential too (not "revenue").
_WEAK_NAME = re.compile(r"(?:^|_)(?:key|keys|creds?|pass)(?:$|_)|(?<=[a-z])(?:Key|Creds?)$")
# Prefixes of well-known credentials: OpenAI/Anthropic, Hugging Face, GitHub, GitLab, Slack, AWS, Google, JWT ...
_KNOWN_PREFIXES = (
    "sk-", "sk_", "rk_", "pk_live", "hf_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxa-",
    "xoxb-", "xoxp-", "xoxr-", "AKIA", "ASIA", "AIza", "eyJ", "npm_", "pypi-", "SG.", "dapi", "shpat_", "r8_", "gsk_",
    "pplx-", "fw_", "nvapi-", "tvly-",
)
_KNOWN_PREFIX = re.compile("^(?:%s)" % "|".join(map(re.escape, _KNOWN_PREFIXES)))
_CONTAINER_ITEMS = 200  # items looked at in a dict or list
_FRAME_CELLS = 20_000  # cells looked at in the text columns of all the frames, per search


_SPACE = re.compile(r"\s")


def looks_like_secret(name: str, value: Any) -> bool:
    """A user's value that is a credential: by its name (``token``, ``api_key``) or by its look (``sk-...``)."""
    if not isinstance(value, str) or not WINDOW <= len(value) <= MAX_SECRET_CHARS:
        return False
    text = value.strip()
    if len(text) < WINDOW or _SPACE.search(text):
        return False
    if _KNOWN_PREFIX.match(text) and len(text) >= _LOOK_MIN:
        return True
    kind = _name_kind(str(name))
    if kind is _STRONG:
        return not _pathlike(text)
    if kind is _WEAK:
        return len(text) >= 12 and _classes(text) >= 2 and not _pathlike(text)
    return len(text) >= 20 and _classes(text) >= 3 and _entropy(text) >= 4.0 and not _pathlike(text)


_STRONG, _WEAK = "strong", "weak"


@functools.lru_cache(maxsize=4096)
def _name_kind(name: str) -> str | None:
    """What a variable's (key's, column's) name says of its value: a credential whatever it looks like
    (``_STRONG``), one if it looks like one too (``_WEAK``), or nothing. Cached: a frame's column asks per cell."""
    if _STRONG_NAME.search(name):
        return _STRONG
    return _WEAK if _weak_name(name) else None


_ENV_SEEN: list[Any] = [None, []]  # the process environment last scanned (its raw items), and what it held


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables (long enough, not paths), and key-looking values.

    The process environment is scanned again only when it changed: every model request and
    observation asks, and scanning costs ~0.2 ms where comparing its raw items costs ~3 us.
    """
    if environ is None:
        raw = getattr(os.environ, "_data", None)  # CPython's bytes mapping behind os.environ
        seen = tuple(raw.items()) if isinstance(raw, dict) else None
        if seen is not None and seen == _ENV_SEEN[0]:
            return list(_ENV_SEEN[1])
        found = _scan_env(os.environ)
        if seen is not None:
            _ENV_SEEN[:] = [seen, found]
        return list(found)
    return _scan_env(environ)


def _scan_env(env: Mapping[str, str]) -> list[str]:
    found = []
    for key, value in env.items():
        if not isinstance(value, str):
            continue
        text = value.strip()
        if _SECRET_ENV.search(key) and len(text) >= WINDOW and not _pathlike(text) and " " not in text:
            found.append(text)
        elif _KNOWN_PREFIX.match(text) and looks_like_secret("", text):
            found.append(text)
    return found


def is_secret(value: Any, known: "Secrets | None" = None) -> bool:
    """``value`` is one of the secrets known now (an environment key, a registered credential), or in ``known``
    (``current()``, when the caller asks about many values)."""
    return isinstance(value, str) and len(value) >= WINDOW and value.strip() in (known or current()).values


def find_secrets(ns: Mapping[str, Any], names: Iterable[str] | None = None, public: bool = False) -> list[str]:
    """The credential-looking values among the user's variables (``names``, or all of ``ns``).

    Strings, and strings one level inside dicts, lists and pandas frames (bounded:
    a frame's text columns up to ``_FRAME_CELLS`` cells), judged by their own name,
    key or column name. ``public``: ``ns`` is a dict of the user's variables already
    (``user_variables``), no ``_name`` in it.
    """
    found: list[str] = []
    budget = [_FRAME_CELLS]  # cells of frames looked at, for all the frames together
    if public and names is None and type(ns) is dict:
        names, values = list(ns), list(ns.values())
    else:
        given = names is not None
        try:
            names = [name for name in (names if given else ns) if name[:1] != "_"]
        except TypeError:  # a name that is no string
            names = [name for name in (names if given else ns) if str(name)[:1] != "_"]
        if given:
            names = [name for name in names if name in ns]
        values = list(map(ns.__getitem__, names))
    # Every run looks at all the user's variables again. Skipped at C speed (map/compress, no Python code
    # per name): the same number or short string under the same name as when judged no credential (it
    # cannot have changed), kinds that hold no text (a function, a module, an array), lists and dicts
    # whose first items are all numbers.
    fresh = list(map(operator.is_not, map(_CLEAN.get, names), values))
    if not all(fresh):
        names, values = list(compress(names, fresh)), list(compress(values, fresh))
    kinds = list(map(type, values))
    distinct = set(kinds)  # a few kinds for thousands of values
    look = list(map(dict(zip(distinct, map(_worth_a_look, distinct))).__getitem__, kinds))
    for name, value in zip(compress(names, look), compress(values, look)):  # (a pair made only for those)
        before = len(found)
        try:
            _collect(str(name), value, found, 2, budget)
        except Exception:  # a strange object must not break a run
            continue
        if type(value) is str and len(value) <= _SHORT and len(found) == before:
            _CLEAN[name] = value
    plain = list(map(_PLAIN.__contains__, kinds))
    if any(plain):
        _CLEAN.update(zip(compress(names, plain), compress(values, plain)))
    for kind, items in ((list, None), (dict, dict.values)):
        where = list(map(operator.is_, kinds, repeat(kind)))
        for name, value in _with_text(compress(names, where), list(compress(values, where)), items):
            try:
                _collect(str(name), value, found, 2, budget)
            except Exception:
                continue
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    return found


def _with_text(names: Iterable[Any], containers: list[Any], items: Any) -> Iterable[tuple[Any, Any]]:
    """The (name, container) pairs among lists (or dicts, ``items=dict.values``) whose first items are not
    all numbers: the only ones worth a look.

    First all of them at once, in C (``map``, ``chain``, no Python code per container): the usual case
    in a notebook of many small lists and dicts; only if some hold other things, each one (``_all_plain``)."""
    if not containers:
        return ()
    contents = map(items, containers) if items is not None else containers
    if max(map(len, containers)) <= _CONTAINER_ITEMS:  # all small: their items as they are, no islice each
        firsts = chain.from_iterable(contents)
    else:
        firsts = chain.from_iterable(map(islice, contents, repeat(_CONTAINER_ITEMS)))
    if _PLAIN.issuperset(map(type, firsts)):
        return ()
    contents = map(items, containers) if items is not None else containers
    return compress(zip(names, containers), map(operator.not_, map(_all_plain, contents)))


@functools.lru_cache(maxsize=4096)
def _worth_a_look(kind: type) -> bool:
    """Values of this kind may hold a credential ``_collect`` finds (a string, bytes, a container, a pandas
    frame); lists and dicts are looked at apart (``_with_text``). Decided once per kind."""
    if kind in (list, dict) or kind in _PLAIN:
        return False
    try:
        if issubclass(kind, (str, bytes, Mapping, tuple, set, frozenset, list)):
            return True
        return str(kind.__module__).startswith("pandas") and kind.__name__ in ("DataFrame", "Series")
    except Exception:  # a strange class: looked at, as any value _collect does not know
        return True


# `name = value`, `name: value`, `export NAME="value"` in a text (a rules file, a README quoted to the model).
_ASSIGNMENT = re.compile(r"""([A-Za-z_][\w.-]*)["']?\s*[:=]\s*["']?([^\s"'`,;]+)""")
_WORD = re.compile(r"""[^\s"'`,;()<>\[\]{}=]+""")


def secrets_in_text(text: str) -> list[str]:
    """The credential-looking values written in a text: ``API_KEY=...`` by its name, ``sk-...`` by its look.

    For text the user hands the model as is (a project's ``AGENTS.md``): a key pasted there is
    redacted like one in the environment.
    """
    found = [value for name, value in _ASSIGNMENT.findall(text) if looks_like_secret(name, value.rstrip(".:"))]
    # By its look alone, not a word with a slash: a path, an address or a model id (Qwen/Qwen2.5-Coder-32B);
    # a key with one (base64) is found by its name above, or by its prefix.
    found += [word for word in _WORD.findall(text)
              if looks_like_secret("", word.rstrip(".:")) and ("/" not in word or _KNOWN_PREFIX.match(word))]
    return list(dict.fromkeys(value.rstrip(".:").strip() for value in found))


def prefixed_credentials(text: str) -> list[str]:
    """The words of a text that begin as well-known credentials do (``sk-``, ``hf_``, ``ghp_``, ``AKIA`` ...).

    For text that is not prose (code, settings): judged by its look, a model id such as
    ``Qwen/Qwen2.5-Coder-32B-Instruct`` or a name such as ``monthlyRevenue2024`` would be taken for a key."""
    return [word for word in _WORD.findall(text) if len(word) >= _LOOK_MIN and _KNOWN_PREFIX.match(word)]


_PLAIN = frozenset({int, float, bool, complex, type(None)})  # never a credential, nothing inside
_SEQUENCES = frozenset({list, tuple, set, frozenset})


_SHORT = 256  # characters: a string judged is remembered if it is no longer
_CLEAN_MAX = 65_536
_CLEAN: dict[str, Any] = {}  # variable name -> the number or short string it held when judged no credential


@functools.lru_cache(maxsize=65_536)
def _short_looks_like_secret(name: str, value: str) -> bool:
    return looks_like_secret(name, value)


def _judged(name: str, value: str) -> bool:
    """``looks_like_secret``, remembered for short strings: every run reads every variable and every frame
    again, and a string judged once is looked up (the cache holds at most 65k strings of <= 256 characters,
    ~16 MB at worst)."""
    return _short_looks_like_secret(name, value) if len(value) <= _SHORT else looks_like_secret(name, value)


def _all_plain(items: Iterable[Any]) -> bool:
    """The first items of a container are all numbers (a list of ints, a dict of floats): nothing to look at,
    found at C speed."""
    return _PLAIN.issuperset(map(type, islice(items, _CONTAINER_ITEMS)))


def _collect(name: str, value: Any, found: list[str], depth: int, budget: list[int]) -> None:
    if type(value) in _PLAIN:  # the commonest values first: isinstance against the ABCs below costs ~2 us
        return
    if isinstance(value, str):
        if _judged(name, value):
            found.append(value.strip())
        return
    if isinstance(value, bytes) and len(value) <= MAX_SECRET_CHARS:
        text = value.decode("ascii", "ignore")
        if looks_like_secret(name, text):
            found.append(text.strip())
        return
    if depth <= 0:
        return
    if type(value) is dict or (type(value) not in _SEQUENCES and isinstance(value, Mapping)):
        if _all_plain(value.values()):
            return
        for i, (key, item) in enumerate(value.items()):
            if i >= _CONTAINER_ITEMS:
                break
            _collect(str(key) if _credential_name(str(key)) else name, item, found, depth - 1, budget)
    elif isinstance(value, (list, tuple, set, frozenset)):
        if _all_plain(value):
            return
        for i, item in enumerate(value):
            if i >= _CONTAINER_ITEMS:
                break
            if type(item) not in _PLAIN:
                _collect(name, item, found, depth - 1, budget)
    elif type(value).__module__.startswith("pandas") and type(value).__name__ in ("DataFrame", "Series"):
        _collect_frame(name, value, found, budget)


def _collect_frame(name: str, value: Any, found: list[str], budget: list[int]) -> None:
    frame = value.to_frame() if type(value).__name__ == "Series" else value
    for column in frame.columns[:200]:
        if budget[0] <= 0:
            return
        series = frame[column]
        if getattr(series, "ndim", 1) != 1 or str(series.dtype) not in ("object", "string", "str"):
            continue
        label = str(column) if _credential_name(str(column)) else name
        cells = series.iloc[:budget[0]].tolist()
        budget[0] -= len(cells)
        if _name_kind(label) is None:  # only the look of a cell can make it a credential
            cells = _may_look_like_secrets(cells)
        for cell in cells:
            if isinstance(cell, str) and _judged(label, cell):
                found.append(cell.strip())


_LOOK_MIN = 16  # the fewest characters of a credential found by its look alone (a known prefix; any other, 20)


def _may_look_like_secrets(cells: list[Any]) -> list[str]:
    """The cells of a column whose name says nothing that ``looks_like_secret`` could take for credentials,
    found at C speed (``map``/``compress``, no Python code per cell): most cells of a frame (``West``,
    ``SKU-0012``, an email, a UUID) are not, and a frame is read again by every run.

    What ``looks_like_secret`` asks of a value its name says nothing of, weakened to what C tests quickly: 16
    characters at least; and, when the column is ASCII, a known prefix or an upper-case letter (one of the three
    kinds of character a credential without a known prefix has: for ASCII text, ``s != s.lower()``). Emails,
    UUIDs and hashes are lower case. A change to those rules must be made here too."""
    texts = list(compress(cells, map(isinstance, cells, repeat(str))))
    texts = list(compress(texts, map(operator.le, repeat(_LOOK_MIN), map(len, texts))))
    if not texts or not "".join(texts).isascii():
        return texts
    prefixed = map(str.startswith, map(str.lstrip, texts), repeat(_KNOWN_PREFIXES))
    return list(compress(texts, map(operator.or_, prefixed, map(operator.ne, texts, map(str.lower, texts)))))


def _weak_name(name: str) -> bool:
    return bool(_WEAK_NAME.search(name) or _WEAK_NAME.search(name.lower()))


def _credential_name(name: str) -> bool:
    return _name_kind(name) is not None


def _pathlike(text: str) -> bool:
    return text.startswith(("/", "~", "./", "../")) or "://" in text or ":/" in text


def _classes(text: str) -> int:
    return any(map(str.islower, text)) + any(map(str.isupper, text)) + any(map(str.isdigit, text))


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


class Secrets:
    """A set of secret values, ready to scan text for any ``WINDOW``-character run of one of them.

    A run of ``WINDOW`` characters of a secret in a text covers one of the text's 4-character chunks
    at a multiple of 4; so the text's chunks (cut by one regex, at C speed) are intersected with the
    set of every 4-character piece of every secret, and only the hits are looked at closely. A text
    with no secret in it costs one ``findall`` and one set intersection, whatever the secrets' sizes.
    """

    def __init__(self, values: Iterable[str] = ()):
        self.values = frozenset(v for v in values if isinstance(v, str) and len(v) >= WINDOW)
        self._windows: set[str] = set()
        self._pieces: set[str] = set()
        for value in self.values:
            self._windows.update(value[i:i + WINDOW] for i in range(len(value) - WINDOW + 1))
            self._pieces.update(value[i:i + _ANCHOR] for i in range(len(value) - _ANCHOR + 1))

    def __bool__(self) -> bool:
        return bool(self.values)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The merged (start, end) spans of ``text`` covered by windows of a secret."""
        hits = self._pieces.intersection(_CHUNK.findall(text))
        if not hits:
            return []
        windows, starts = self._windows, set()
        for piece in hits:
            at = text.find(piece)
            while at != -1:
                if at % _ANCHOR == 0:
                    for start in range(max(0, at - WINDOW + _ANCHOR), at + 1):
                        if start not in starts and text[start:start + WINDOW] in windows:
                            starts.add(start)
                at = text.find(piece, at + 1)
        spans: list[tuple[int, int]] = []
        for start in sorted(starts):
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], start + WINDOW)
            else:
                spans.append((start, start + WINDOW))
        return spans

    def redact(self, text: str) -> str:
        if not self._pieces or not isinstance(text, str) or len(text) < WINDOW:
            return text
        spans = self.spans(text)
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts += [text[last:start], MARK]
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def redact_data(self, data: Any) -> Any:
        """``redact`` on every string in JSON-like data (dicts, lists), keys included."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.redact_data(v) for v in data]
        return data


# -- the process's secrets: the environment's, and those found in the user's variables ----------------

_REGISTERED: set[str] = set()
_LOCK = threading.Lock()
_CACHE: dict[frozenset, Secrets] = {}


def register(values: Iterable[str]) -> None:
    """Remember secret values found in the user's variables: they are redacted from now on."""
    new = {v for v in values if isinstance(v, str) and len(v) >= WINDOW}
    with _LOCK:
        _REGISTERED.update(new)


def current(environ: Mapping[str, str] | None = None) -> Secrets:
    """The secrets to redact now: the environment's (read again: it can change) and the registered ones."""
    key = frozenset(env_secrets(environ)) | frozenset(_REGISTERED)
    with _LOCK:
        secrets = _CACHE.get(key)
        if secrets is None:
            secrets = Secrets(key)
            _CACHE.clear()
            _CACHE[key] = secrets
    return secrets


def redact_secrets(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every run of ``WINDOW`` characters of a secret in ``text`` with ``[redacted secret]``.

    Defence in depth for everything sent to the model or kept (observations, variable summaries,
    records, traces): the guard stops agent code from reading the environment; this catches a
    secret that reached an output some other way (a variable the user made from it, a library's
    error message, a shortened DataFrame cell).
    """
    if not text:
        return text
    return current(environ).redact(text)


def redact_all(texts: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """``redact_secrets`` for many texts, reading the environment once."""
    if not texts:
        return list(texts)
    secrets = current(environ)
    return [secrets.redact(t) for t in texts]


def redact_data(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``redact_secrets`` on every string of JSON-like data (a record, an nbformat output, a message list)."""
    return current(environ).redact_data(data)

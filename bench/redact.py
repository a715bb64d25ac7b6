"""What does redaction by content cost?

Every message sent to the model, every observation, every text the trace
shows is scanned for any 8-character run of a secret. The scan cuts the text
into 4-character chunks with one regex (C speed), intersects them with the set
of every 4-character piece of every secret, and looks closely only at the hits.

Measured here, in one run: the time to redact texts of 10 KB (an observation),
100 KB (a long conversation) and 2 MB (a huge reply), holding no secret and
holding pieces of one, against 1, 10 and 50 secrets of 60 characters and one
secret of 10,000 characters; compared with the old exact-match regex (which
misses the pieces) on the same text. Targets: under 1 ms for 10 KB, and a
cost that does not grow with the number or the length of the secrets (the
first version, one ``str.find`` per piece of each secret, took 3 s for 2 MB
against one 10,000-character secret). Measured here on 2 loaded cores: about
0.5 ms for 10 KB, 5 ms for 100 KB and 100-140 ms for 2 MB, for every row.

Then what each ``%%agent`` run pays to find the credentials in a notebook's DataFrames (``find_secrets``
reads up to 20,000 cells of text columns per run, and again after a step for each frame it made): a
100,000-row frame of ordinary text (categories, ids, emails, UUIDs), the first run (no cell judged before) and
the next ones, against judging the same cells one by one with ``looks_like_secret`` (what the walk did before)
and against pandas' own ``.str.len()`` over them.

Run it as ``python bench/redact.py``.
"""

from __future__ import annotations

import random
import re
import string
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from smol_magic.safety import redact  # noqa: E402
from smol_magic.safety.redact import Secrets  # noqa: E402


def secret(n: int, rng: random.Random) -> str:
    return "sk-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n - 3))


def prose(n: int, rng: random.Random) -> str:
    words = "the revenue of each region grew by a few percent in the second quarter while costs fell".split()
    out, size = [], 0
    while size < n:
        w = rng.choice(words) + rng.choice(" \n, ")
        out.append(w)
        size += len(w)
    return "".join(out)[:n]


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    rng = random.Random(7)
    print(f"{'secrets':>16} {'text':>8} {'clean ms':>9} {'pieces ms':>10} {'exact-regex ms':>15}")
    for label, values in (("1 x 60", [secret(60, rng)]), ("10 x 60", [secret(60, rng) for _ in range(10)]),
                          ("50 x 60", [secret(60, rng) for _ in range(50)]), ("1 x 10,000", [secret(10_000, rng)])):
        secrets = Secrets(values)
        exact = re.compile("|".join(re.escape(v) for v in values))
        for size in (10_000, 100_000, 2_000_000):
            clean = prose(size, rng)
            dirty = clean[: size // 2] + values[0][3:40] + clean[size // 2:]
            assert values[0][3:40] not in secrets.redact(dirty)
            print(f"{label:>16} {size:>8,} {best(lambda: secrets.redact(clean)) * 1000:>9.2f} "
                  f"{best(lambda: secrets.redact(dirty)) * 1000:>10.2f} "
                  f"{best(lambda: exact.sub('x', dirty)) * 1000:>15.2f}")

    frames()


def frames() -> None:
    n = 100_000
    columns = {
        "region": [("West", "East", "North", "South")[i % 4] for i in range(n)],
        "sku": [f"SKU{i:08d}X" for i in range(n)],
        "email": [f"user{i}@example.com" for i in range(n)],
        "order_id": [str(uuid.UUID(int=i * 7919)) for i in range(n)],
    }
    print(f"\nfinding credentials in a {n:,}-row frame, one text column (the walk reads "
          f"{redact._FRAME_CELLS:,} cells per run)")
    print(f"{'column':>10} {'first run ms':>13} {'next runs ms':>13} {'cell by cell ms':>16} {'ratio':>6} "
          f"{'pandas .str.len() ms':>21}")
    for name, cells in columns.items():
        frame = pd.DataFrame({name: cells})
        ns = {"orders": frame}
        head = frame[name].iloc[:redact._FRAME_CELLS]
        redact._short_looks_like_secret.cache_clear()  # a frame's cells judged for the first time
        first = best(lambda: redact.find_secrets(ns), repeats=1)
        walk = best(lambda: redact.find_secrets(ns))  # judged before: looked up
        by_cell = best(lambda: [c for c in head if redact.looks_like_secret("orders", c)])
        assert redact.find_secrets(ns) == []
        print(f"{name:>10} {first * 1000:>13.2f} {walk * 1000:>13.2f} {by_cell * 1000:>16.2f} {walk / by_cell:>6.2f} "
              f"{best(lambda: head.str.len()) * 1000:>21.2f}")


if __name__ == "__main__":
    main()

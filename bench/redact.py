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

Run it as ``python bench/redact.py``.
"""

from __future__ import annotations

import random
import re
import string
import time

from smol_magic.safety.redact import Secrets


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


if __name__ == "__main__":
    main()

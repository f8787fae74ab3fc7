"""CPU workloads, the same file and iterations natively and in the guest (verify.py).

    python workloads.py NAME [REPEAT]   prints: NAME WALL_SECONDS (perf_counter, best of REPEAT)

WASI has no CPU clock (process_time is emulated from a wall clock), and on a shared machine
wall time includes waiting for a core, so verify.py measures CPU time from the host instead:
the CPU time of a whole run of NAME minus that of a run of `none` (start-up and imports only).
"""
import json
import random
import re
import sys
import time


def mixed():
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    fib(24)
    d = {}
    for i in range(200_000):
        d[f"k{i}"] = i
    total = 0
    for i in range(0, 200_000, 3):
        total += d[f"k{i}"]
    rnd = random.Random(1)
    xs = [rnd.random() for _ in range(200_000)]
    xs.sort()
    words = sorted(str(x) for x in xs[:50_000])
    return total + len(words)


def bigint():
    f = 1
    for i in range(2, 12_000):
        f *= i
    a, b = 0, 1
    for _ in range(60_000):
        a, b = b, a + b
    x = 3 ** 20_000
    acc = 0
    for i in range(20_000):
        acc += (x >> i) % 1_000_003
    return (f % 1_000_000_007) + (b % 97) + acc


def stdlib():
    rnd = random.Random(2)
    doc = [{"id": i, "name": f"item-{i}", "tags": ["a", "b", str(i % 7)],
            "price": rnd.random() * 100, "ok": i % 2 == 0} for i in range(20_000)]
    s = json.dumps(doc)
    back = json.loads(s)
    text = " ".join(f"user{i}@example{i % 13}.org visited /page/{i}?q={i * 7}" for i in range(20_000))
    emails = re.findall(r"[\w.]+@[\w.]+\.org", text)
    pages = re.sub(r"/page/(\d+)", lambda m: f"/p/{int(m.group(1)) // 2}", text)
    parts = text.split()
    upper = "-".join(p.upper() for p in parts if p.startswith("user"))
    fmt = [f"{d['name']:>12}|{d['price']:8.2f}" for d in back]
    return len(s) + len(emails) + len(pages) + len(upper) + len(fmt)


WORKLOADS = {"mixed": mixed, "bigint": bigint, "stdlib": stdlib, "none": lambda: None}

if __name__ == "__main__":
    name = sys.argv[1]
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        WORKLOADS[name]()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(name, f"{best:.6f}")

"""toolchain/cpython/pack_stdlib.py's marshal clean-up (the 3.9 runtime's stdlib zip): the same
value marshalled while other references to its parts exist or not gives the same bytes, and
what a back-reference uses keeps its flag, renumbered as the reader counts."""
from __future__ import annotations

import marshal

import toolchainscripts


def _value(shared: str, alone: str) -> tuple:
    return ([shared, (shared, alone)], {alone: 1.5, "k": (2, -3 ** 40)}, frozenset({"x"}), b"raw", None)


def test_the_bytes_do_not_depend_on_references_held_outside_the_value():
    pack = toolchainscripts.load("pack_stdlib")
    shared, alone = "".join(["sha", "red"]), "".join(["alo", "ne"])  # made at run time: not interned constants
    held = marshal.dumps(_value(shared, alone))          # `alone` is held here too: marshal flags it
    value = _value("".join(["sha", "red"]), "".join(["alo", "ne"]))
    free = marshal.dumps(value)
    assert held != free                                  # what made the 3.9 zip differ between packings
    assert pack.stable_marshal(held) == pack.stable_marshal(free)
    stable = pack.stable_marshal(free)
    assert marshal.loads(stable) == value
    assert pack.stable_marshal(stable) == stable


def test_a_back_reference_keeps_its_target_and_is_renumbered():
    pack = toolchainscripts.load("pack_stdlib")
    first, second = "".join(["fi", "rst"]), "".join(["sec", "ond"])
    data = marshal.dumps((first, first, "".join(["un", "used"]), second, second, first))
    stable = pack.stable_marshal(data)
    loaded = marshal.loads(stable)
    assert loaded == (first, first, "unused", second, second, first)
    assert loaded[0] is loaded[1] is loaded[5] and loaded[3] is loaded[4]
    assert len(stable) < len(marshal.dumps((first, first, "unused", second, second, first), 2))  # refs kept

"""The calibration's reading of CPython's signal words (runtime/interrupt.py) on memories laid
out as 3.12's (four words 0 -> 1) and 3.13's (two "tripped" words 0 -> 1 and an eval breaker of
bits gaining _PY_SIGNALS_PENDING_BIT above an instrumentation version), with the noise a real
run has: a pointer written and freed, a counter that keeps its new bit."""
from __future__ import annotations

import json
import struct
import threading

import wasmtime

from boxer_py.runtime import interrupt

SIZE = 4096
TRIPPED, IS_TRIPPED, BREAKER, PENDING = 0x100, 0x300, 0x400, 0x404
WINCH = TRIPPED + 26 * 8
HANDLER = WINCH + 4


def memory(*layers: dict[int, int]) -> bytes:
    data = bytearray(SIZE)
    for layer in layers:
        for address, value in layer.items():
            struct.pack_into("<I", data, address, value)
    return bytes(data)


def naps(breaker_before: int, breaker_bits: int, pending: bool, breaker: int = BREAKER, pending_at: int = PENDING) -> list[bytes]:
    """The five naps of CALIBRATION as the host reads them: before and after interrupt_main,
    SIG_IGN set, before and after interrupt_main(SIGWINCH)."""
    base = {breaker: breaker_before, HANDLER: 0x5000, 0x900: 1}
    shared = {IS_TRIPPED: 1, breaker: breaker_before | breaker_bits, **({pending_at: 1} if pending else {})}
    handled = {0x900: 3}  # a counter that keeps its new bit
    installed = {HANDLER: 0x7000, **handled}
    return [memory(base), memory(base, shared, {TRIPPED: 1, 0x800: 0xAA7410}, handled),  # a pointer, freed later
            memory(base, {HANDLER: 0x5010}, handled), memory(base, installed),
            memory(base, installed, shared, {WINCH: 1})]


def test_312_layout_four_words_set_to_one():
    found = interrupt._flags(*naps(0, 1, pending=True)[:3])
    assert found == ((TRIPPED, 1), (IS_TRIPPED, 1), (BREAKER, 1), (PENDING, 1))
    winch = interrupt._winch(found, naps(0, 1, pending=True))
    assert winch == interrupt.Winch(((WINCH, 1), (IS_TRIPPED, 1), (BREAKER, 1), (PENDING, 1)), HANDLER,
                                    (0, 0x5000, 0x5010))


def test_313_layout_the_eval_breaker_gains_a_bit():
    m = naps(0x300, 2, pending=False)
    found = interrupt._flags(*m[:3])
    assert found == ((TRIPPED, 1), (IS_TRIPPED, 1), (BREAKER, 2))
    assert interrupt._winch(found, m) == interrupt.Winch(((WINCH, 1), (IS_TRIPPED, 1), (BREAKER, 2)), HANDLER,
                                                         (0, 0x5000, 0x5010))


def test_311_layout_the_words_are_set_in_cpythons_order_not_by_address():
    """3.11's eval breaker and signals_pending lie below its handlers. The page (and a run without
    epochs) sets the words while the guest runs: the signal's "tripped" word and is_tripped go
    first, as CPython's handler sets them, or a busy loop can see the breaker, find is_tripped
    still 0 and lose the Ctrl-C."""
    m = naps(0, 1, pending=True, breaker=0x20, pending_at=0x40)
    found = interrupt._flags(*m[:3])
    assert found == ((0x20, 1), (0x40, 1), (TRIPPED, 1), (IS_TRIPPED, 1))  # address order
    winch = interrupt._winch(found, m)
    assert winch is not None and winch.flags == ((WINCH, 1), (IS_TRIPPED, 1), (0x40, 1), (0x20, 1))
    assert interrupt._in_order(found, TRIPPED) == ((TRIPPED, 1), (IS_TRIPPED, 1), (0x40, 1), (0x20, 1))


def test_a_reference_count_that_gains_a_bit_is_not_a_signal_word():
    """Before 3.12 None's reference count changes: the calibration's list of results holds two
    more at the second nap and none by the third, so a count of 4n+1 gains one bit and loses
    it again, one lower than it was (the 3.11 runtime built with ThinLTO: 0xfb9, 0xfbb, 0xfb8)."""
    m = [bytearray(nap) for nap in naps(0, 1, pending=True, breaker=0x20, pending_at=0x40)]
    for i, count in enumerate((0xFB9, 0xFBB, 0xFB8)):
        struct.pack_into("<I", m[i], 0x600, count)
    assert interrupt._flags(*map(bytes, m[:3])) == ((0x20, 1), (0x40, 1), (TRIPPED, 1), (IS_TRIPPED, 1))


def test_a_bit_not_cleared_by_the_handling_or_two_bits_at_once_are_not_signal_words():
    m = naps(0, 1, pending=False)
    kept = bytearray(m[2])
    struct.pack_into("<I", kept, TRIPPED, 1)  # still set after the KeyboardInterrupt: not CPython's
    assert interrupt._flags(m[0], m[1], bytes(kept)) is None
    assert interrupt._flags(*naps(0, 6, pending=False)[:3]) is None


def test_delivery_ors_the_bits_in_and_keeps_the_others(tmp_path):
    store = wasmtime.Store()
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    mem.write(store, struct.pack("<I", 0x300), BREAKER)
    request = threading.Event()
    interrupts = interrupt.Interrupts(request, ((TRIPPED, 1), (IS_TRIPPED, 1), (BREAKER, 2)), mem)
    assert not interrupts.deliver(store)
    request.set()
    assert interrupts.deliver(store) and not request.is_set()
    words = [struct.unpack("<I", mem.read(store, a, a + 4))[0] for a in (TRIPPED, IS_TRIPPED, BREAKER)]
    assert words == [1, 1, 0x302]


def test_the_cache_keeps_bits_and_refuses_malformed_entries(tmp_path):
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({"flags": [[TRIPPED, 1], [IS_TRIPPED, 1], [BREAKER, 2]],
                                 "winch": {"flags": [[WINCH, 1], [IS_TRIPPED, 1], [BREAKER, 2]], "handler": HANDLER,
                                           "unhandled": [0, 5, 6]}}))
    found = interrupt.load(cache)
    assert found.flags == ((TRIPPED, 1), (IS_TRIPPED, 1), (BREAKER, 2))
    assert found.winch == interrupt.Winch(((WINCH, 1), (IS_TRIPPED, 1), (BREAKER, 2)), HANDLER, (0, 5, 6))
    for bad in ([TRIPPED, IS_TRIPPED, BREAKER, PENDING], [[1, 1], [2, 1]], [[1, 1], [2, -1], [3, 1]],
                [[1, 1], [2, True], [3, 1]], [[1, 1], [2, 1 << 32], [3, 1]], "x"):
        cache.write_text(json.dumps({"flags": bad}))
        assert interrupt.load(cache) == interrupt.Calibration(), bad


def test_a_run_with_its_calibration_cached_reads_it_without_a_guard(tmp_path, monkeypatch):
    """A run of a calibrated CPython takes its words from the cache file alone: no calibration
    run, so no guard (on an engine without epochs, a watch thread of its own) around it."""
    loaded = type("Loaded", (), {"digest": "abc", "module": None})()
    cache = tmp_path / "interrupt" / f"abc-{interrupt.CALIBRATION_VERSION}.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({"flags": [[TRIPPED, 1], [IS_TRIPPED, 1], [BREAKER, 2]],
                                 "winch": {"flags": [[WINCH, 1], [IS_TRIPPED, 1], [BREAKER, 2]], "handler": HANDLER,
                                           "unhandled": [0, 5, 6]}}))
    guards: list[str] = []

    def guard():
        guards.append("entered")
        raise AssertionError("a calibration run")

    monkeypatch.setattr(interrupt, "calibrate", lambda *args: guard())
    found = interrupt.for_run(threading.Event(), None, None, loaded, tmp_path, "python", tmp_path, True, guard)
    assert found.flags == ((TRIPPED, 1), (IS_TRIPPED, 1), (BREAKER, 2)) and found.winch.handler == HANDLER
    assert guards == []
    cache.unlink()  # not calibrated yet: the calibration runs inside the guard
    calls: list[str] = []

    class Guard:
        def __enter__(self):
            calls.append("enter")

        def __exit__(self, *exc):
            calls.append("exit")

    monkeypatch.setattr(interrupt, "calibrate", lambda *args: calls.append("calibrate") or interrupt.Calibration())
    found = interrupt.for_run(threading.Event(), None, None, loaded, tmp_path, "python", tmp_path, True, Guard)
    assert calls == ["enter", "calibrate", "exit"] and found.flags is None

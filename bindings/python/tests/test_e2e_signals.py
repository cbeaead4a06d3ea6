"""Signals in the client process: a handled signal during a call does not
hurt the call, and Ctrl-C raises KeyboardInterrupt in the caller and leaves
the connection usable (the late answer is dropped when it arrives).

Profilers and watchdogs in a policy process send such signals all the time;
a blocking read interrupted by one used to end the connection."""

from __future__ import annotations

import signal
import threading

import pytest

import simplerpc

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX signals")


def test_a_signal_storm_during_calls_loses_no_call(conn):
    ticks = []
    old = signal.signal(signal.SIGALRM, lambda *_: ticks.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        builtins = conn.builtins
        for i in range(200):
            # A small call, and one that sleeps through many ticks.
            assert simplerpc.materialize(builtins.abs(-i)) == i
            if i % 50 == 0:
                conn.execute("import time; time.sleep(0.05)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(ticks) > 50, "the timer fired during the calls"


def test_ctrl_c_during_a_call_raises_and_keeps_the_connection(conn):
    main = threading.main_thread().ident
    assert threading.get_ident() == main
    # A real SIGINT to the main thread, as a terminal's Ctrl-C delivers it.
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            simplerpc.materialize(conn.eval("__import__('time').sleep(1.5) or 'late'"))
    finally:
        timer.cancel()
    # The connection goes on; the late answer, when it comes, answers nothing.
    for i in range(5):
        assert simplerpc.materialize(conn.eval(f"{i} * 2")) == i * 2
    assert simplerpc.materialize(conn.eval("'after'")) == "after"

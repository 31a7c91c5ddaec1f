"""Progress and log callbacks (cancel, exceptions, lifetime) and threads
(shared QTensor matmul, a Context used by two threads, close under use)."""

import gc
import logging
import threading
import unittest
import weakref

try:
    import numpy as np
    import pytest
except ImportError as exc:
    raise unittest.SkipTest("needs numpy and pytest (bindings/python/test.sh installs them): %s" % exc)

import _support as S
from _support import gptq

N, K, BLOCK = 32, 512, 32  # 16 blocks: 16 progress checks per quantize


def _layer():
    return S.activations(600, K, 1), S.weights(N, K, 2)


def _ctx(**kw):
    x, _ = _layer()
    ctx = gptq.Context(N, K, block_size=BLOCK, group_size=64, **kw)
    ctx.add_batch(x)
    return ctx


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------

def test_progress_reports_columns():
    calls = []
    with _ctx(progress=lambda done, total: calls.append((done, total))) as ctx:  # None: go on
        ctx.quantize(_layer()[1])
    assert [d for d, _ in calls] == list(range(BLOCK, K + 1, BLOCK))
    assert all(t == K for _, t in calls)


def test_cancel_really_stops_and_leaves_the_context_unchanged():
    calls = []
    stop_at = [3]

    def progress(done, total):
        calls.append(done)
        return len(calls) < stop_at[0]  # False on the 3rd call

    _, w = _layer()
    with _ctx(progress=progress) as ctx:
        h0 = ctx.export_hessian()
        with pytest.raises(gptq.CancelledError) as info:
            ctx.quantize(w)
        assert calls == [BLOCK, 2 * BLOCK, 3 * BLOCK]  # not one check more
        assert info.value.message.startswith("gptq_quantize: cancelled by the progress callback")
        assert S.bits_equal(ctx.export_hessian()[0], h0[0]) and ctx.samples == h0[1]
        del calls[:]
        stop_at[0] = 1  # cancel at the first check
        with pytest.raises(gptq.CancelledError):
            ctx.quantize(w)
        assert calls == [BLOCK]
        stop_at[0] = 10 ** 9
        q, _ = ctx.quantize(w)
    with _ctx() as fresh:
        q2, _ = fresh.quantize(w)
    assert np.array_equal(q.codes(), q2.codes())


def test_exception_in_progress_cancels_and_is_reraised():
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise ZeroDivisionError("boom")
        return True

    with _ctx(progress=progress) as ctx:
        with pytest.raises(ZeroDivisionError, match="boom") as info:
            ctx.quantize(_layer()[1])
        assert calls == [BLOCK, 2 * BLOCK]
        notes = getattr(info.value, "__notes__", None)
        if notes is not None:
            assert "cancelled" in notes[0]
        # The context is still usable; the callback keeps being called.
        del calls[:]
        with pytest.raises(ZeroDivisionError):
            ctx.quantize(_layer()[1])


def test_keyboard_interrupt_in_progress_stops_quantize():
    calls = []

    def progress(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with _ctx(progress=progress) as ctx:
        with pytest.raises(KeyboardInterrupt):
            ctx.quantize(_layer()[1])
    assert calls == [BLOCK]


def test_callback_must_not_reenter_its_context():
    def progress(done, total):
        ctx.samples  # calling back into the same Context: refused, not a crash

    ctx = _ctx(progress=progress)
    with ctx:
        with pytest.raises(gptq.InvalidStateError, match="already in use"):
            ctx.quantize(_layer()[1])


def test_close_from_inside_a_call_is_deferred():
    def progress(done, total):
        ctx.close()  # frees the context only when quantize has returned

    ctx = _ctx(progress=progress)
    q, _ = ctx.quantize(_layer()[1])
    assert ctx.closed and q.codes().shape == (N, K)
    with pytest.raises(gptq.InvalidStateError, match="closed"):
        ctx.add_batch(_layer()[0])


# ---------------------------------------------------------------------------
# Log
# ---------------------------------------------------------------------------

def test_log_callback():
    logs = []
    with _ctx(log=lambda level, message: logs.append((level, message)), log_level="debug",
              backend="auto") as ctx:
        ctx.quantize(_layer()[1])
    assert logs and all(isinstance(lv, gptq.LogLevel) and isinstance(m, str) for lv, m in logs)
    assert any(lv == gptq.LogLevel.GPTQ_LOG_INFO and "backend auto" in m for lv, m in logs)
    assert any(lv == gptq.LogLevel.GPTQ_LOG_DEBUG and "gptq_solve" in m for lv, m in logs)
    del logs[:]
    with _ctx(log=lambda level, message: logs.append(level)) as ctx:  # default level INFO
        ctx.quantize(_layer()[1])
    assert logs and gptq.LogLevel.GPTQ_LOG_DEBUG not in logs


def test_log_to_a_python_logger(caplog):
    logger = logging.getLogger("gptq-test")
    with caplog.at_level(logging.DEBUG, logger="gptq-test"):
        with _ctx(log=logger, log_level="debug") as ctx:
            ctx.quantize(_layer()[1])
    levels = {r.levelno for r in caplog.records if r.name == "gptq-test"}
    assert logging.DEBUG in levels and logging.INFO in levels


def test_exception_in_log_is_reraised():
    def bad_log(level, message):
        raise RuntimeError("log failed: " + message)

    with pytest.raises(RuntimeError, match="log failed: backend auto"):
        gptq.Context(N, K, backend="auto", log=bad_log)  # the backend choice is logged

    def bad_debug(level, message):
        if level == gptq.LogLevel.GPTQ_LOG_DEBUG:
            raise ValueError("no debug please")

    with _ctx(log=bad_debug, log_level="debug") as ctx:
        with pytest.raises(ValueError, match="no debug please"):
            ctx.quantize(_layer()[1])  # the finished tensor is freed, not leaked
        assert ctx.samples == 1


def test_callbacks_are_kept_alive():
    seen = []

    def make():
        # Only the Context holds the callables (and their C trampolines).
        return _ctx(progress=lambda d, t: seen.append(d) or True,
                    log=lambda lv, m: seen.append(m), log_level="debug")

    ctx = make()
    gc.collect()
    with ctx:
        ctx.quantize(_layer()[1])
    assert K in seen and any(isinstance(s, str) for s in seen)


def test_unclosed_objects_are_freed():
    holder = {}
    ctx = _ctx(log=lambda lv, m: holder)
    holder["ctx"] = ctx  # a cycle through the callback: ctx -> log -> holder -> ctx
    q, _ = ctx.quantize(_layer()[1])
    refs = [weakref.ref(ctx), weakref.ref(q)]
    del ctx, q, holder
    gc.collect()
    assert all(r() is None for r in refs)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

def test_threads_share_a_qtensor_for_matmul():
    with _ctx() as ctx:
        q, _ = ctx.quantize(_layer()[1])
    inputs = [S.activations(1 + i % 20, K, 100 + i) for i in range(16)]
    expected = [q.matmul(x) for x in inputs]
    failures = []
    start = threading.Barrier(8)

    def worker(t):
        try:
            start.wait()
            for it in range(30):
                i = (t * 7 + it) % len(inputs)
                if not S.bits_equal(q.matmul(inputs[i]), expected[i]):
                    failures.append((t, it))
                if it % 10 == 0 and not np.array_equal(q.codes(), q.codes()):
                    failures.append((t, it, "codes"))
        except Exception as e:  # pragma: no cover - reported below
            failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    q.close()


def test_close_while_other_threads_use_the_qtensor():
    with _ctx() as ctx:
        q, _ = ctx.quantize(_layer()[1])
    x = S.activations(40, K, 7)
    want = q.matmul(x)
    outcome = []
    go = threading.Event()

    def worker():
        go.wait()
        done = 0
        try:
            while True:
                assert S.bits_equal(q.matmul(x), want)
                done += 1
        except gptq.InvalidStateError:
            outcome.append(done)
        except Exception as e:  # pragma: no cover
            outcome.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    go.set()
    while not q.closed:
        threading.Event().wait(0.02)
        q.close()  # calls in flight finish first; then the tensor is freed
    for th in threads:
        th.join()
    assert len(outcome) == 4 and all(isinstance(o, int) for o in outcome)


def test_a_context_refuses_a_second_thread():
    inside = threading.Event()
    release = threading.Event()

    def progress(done, total):
        inside.set()
        release.wait(10)

    ctx = _ctx(progress=progress)
    result = []
    th = threading.Thread(target=lambda: result.append(ctx.quantize(_layer()[1])))
    th.start()
    try:
        assert inside.wait(10)
        with pytest.raises(gptq.InvalidStateError, match="already in use"):
            ctx.add_batch(_layer()[0])
    finally:
        release.set()
        th.join()
    assert len(result) == 1 and ctx.samples == 1
    ctx.close()

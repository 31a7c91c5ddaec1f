"""Hand-written smoke tests of the generated gptq._native (ctypes) layer,
run against a real libgptq:

    GPTQ_LIBRARY=<builddir>/libgptq.so python3 -m unittest discover -s bindings/python/tests
"""

import ctypes
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gptq import _native as n  # noqa: E402


class NativeTest(unittest.TestCase):
    def test_layout(self):
        self.assertEqual(n.check_layout(), [])

    def test_version(self):
        v = n.gptq_version_number()
        self.assertEqual(v // 10000, n.GPTQ_VERSION_MAJOR)
        self.assertGreaterEqual(v, n.GPTQ_VERSION_NUMBER)
        self.assertEqual(n.gptq_version_string().decode(),
                         "%d.%d.%d" % (v // 10000, v // 100 % 100, v % 100))

    def test_config_default(self):
        cfg = n.gptq_config()
        n.gptq_config_default(ctypes.byref(cfg))
        self.assertEqual(cfg.struct_size, ctypes.sizeof(n.gptq_config))
        self.assertEqual(cfg.bits, 4)
        self.assertEqual(cfg.log_level, n.GPTQ_LOG_INFO)
        self.assertFalse(cfg.progress)

    def test_error(self):
        ctx = ctypes.POINTER(n.gptq_ctx)()
        st = n.gptq_ctx_create(0, 16, None, ctypes.byref(ctx))
        self.assertEqual(st, n.gptq_status.GPTQ_ERR_INVALID_SIZE)
        self.assertFalse(ctx)
        self.assertTrue(n.gptq_last_error())
        self.assertTrue(n.gptq_status_string(st).startswith(b"GPTQ_ERR_INVALID_SIZE"))

    def test_progress_callback_cancels(self):
        calls = []
        cb = n.gptq_progress_fn(lambda done, total, user_data: calls.append(done) or 1)
        cfg = n.gptq_config()
        n.gptq_config_default(ctypes.byref(cfg))
        cfg.progress = cb
        ctx = ctypes.POINTER(n.gptq_ctx)()
        self.assertEqual(n.gptq_ctx_create(4, 32, ctypes.byref(cfg), ctypes.byref(ctx)), n.GPTQ_OK)
        try:
            x = (ctypes.c_float * (8 * 32))(*[(i * 7919 % 23) - 11 for i in range(8 * 32)])
            self.assertEqual(n.gptq_add_batch(ctx, x, n.GPTQ_DTYPE_F32, 8, 32, 8), n.GPTQ_OK)
            w = (ctypes.c_float * (4 * 32))(*[(i * 104729 % 17) / 8 - 1 for i in range(4 * 32)])
            q = ctypes.POINTER(n.gptq_qtensor)()
            st = n.gptq_quantize(ctx, w, n.GPTQ_DTYPE_F32, 4, 32, ctypes.byref(q), None)
            self.assertEqual(st, n.GPTQ_ERR_CANCELLED)
            self.assertFalse(q)
            self.assertTrue(calls)
        finally:
            n.gptq_ctx_destroy(ctx)


if __name__ == "__main__":
    unittest.main()

"""libgptq for Python.

Placeholder until the idiomatic layer lands: the raw ctypes declarations,
generated from include/gptq.h, are in gptq._native.
"""

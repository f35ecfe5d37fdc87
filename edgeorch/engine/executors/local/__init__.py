"""The local executor: a zygote forks shims that supervise one attempt at a time (see ``executor.py``, ``shim.py``, ``zygote.py``).

Kept free of imports: the zygote (``python -m edgeorch.engine.executors.local.zygote``) starts fast.
"""

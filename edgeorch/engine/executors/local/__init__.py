"""The local executor: a zygote forks one shim per attempt (see ``executor.py``, ``shim.py``, ``zygote.py``).

Kept free of imports: the zygote (``python -m edgeorch.engine.executors.local.zygote``) starts fast.
"""

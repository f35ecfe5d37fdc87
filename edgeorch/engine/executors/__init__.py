"""Executors: what runs an attempt's processes for the engine.

``base.py`` is the contract (an interface and the plain data that crosses
it); ``local/`` is the first implementation (a zygote forks one supervising
shim per attempt). Kept free of imports so that the local zygote starts fast.
"""

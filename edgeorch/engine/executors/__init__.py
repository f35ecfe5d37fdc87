"""Executors: what runs an attempt's processes for the engine.

``base.py`` is the contract (an interface and the plain data that crosses
it); ``local/`` is the first implementation (a zygote forks supervising
shims, each running one attempt at a time). Kept free of imports so that the local zygote starts fast.
"""

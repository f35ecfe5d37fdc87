"""Running pipelines: scheduling decisions (pure), the process executor, recovery.

Kept free of imports so that the zygote (``python -m edgeorch.engine.executors.local.zygote``)
starts fast; import the submodules you need.
"""

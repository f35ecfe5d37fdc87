"""Resources end to end; the ``daemon`` fixture comes from tests/conftest.py; helpers are in ``resources_helpers.py``."""

"""End-to-end trigger tests; the ``daemon`` fixture comes from tests/conftest.py."""

"""The daemon fixtures live in tests/conftest.py (shared with the fault, resources and triggers tests)."""

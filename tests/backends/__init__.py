"""Tests of behaviour specific to one backend (tests/backends/test_<name>.py)."""

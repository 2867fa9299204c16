"""Fault injection against a real local stack: ``make chaos`` (full) and, bounded,
``tests/integration/test_chaos.py``. See :mod:`tests.chaos.suite`."""

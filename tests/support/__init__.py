"""Plain helpers the tests import by full name (``from tests.support.live import Recorder``):
row builders, stand-in servers, capture readers. Anything that must be closed after a test is
a fixture in a ``conftest.py`` instead (``tests/conftest.py`` lists them)."""

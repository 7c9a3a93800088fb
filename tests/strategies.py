"""clonestore's hypothesis strategies, for the tests: a re-export.

The one definition lives in :mod:`clonestore.testing.strategies`, shipped
with the conformance kit, whose differential properties use them and where
third-party backends and applications can import them too. Keeping the tests'
``from tests import strategies as s`` working keeps one place per strategy.
"""

from clonestore.testing.strategies import *  # noqa: F403
from clonestore.testing.strategies import __all__ as __all__

"""The whole conformance suite, collected as one module.

The contract tests (SPI, repositories, optional capabilities), then the differential
properties against ``memory://`` as the oracle. Run it against any backend, unmodified::

    python -m pytest --pyargs clonestore.testing --clonestore-url=mybackend://...
"""

from clonestore.testing.contract.capabilities import *  # noqa: F403
from clonestore.testing.contract.context import *  # noqa: F403
from clonestore.testing.contract.documents import *  # noqa: F403
from clonestore.testing.contract.entities import *  # noqa: F403
from clonestore.testing.contract.erasure import *  # noqa: F403
from clonestore.testing.contract.errors import *  # noqa: F403
from clonestore.testing.contract.inputs import *  # noqa: F403
from clonestore.testing.contract.memories import *  # noqa: F403
from clonestore.testing.contract.models import *  # noqa: F403
from clonestore.testing.contract.paging import *  # noqa: F403
from clonestore.testing.contract.queries import *  # noqa: F403
from clonestore.testing.contract.sessions import *  # noqa: F403
from clonestore.testing.contract.spi import *  # noqa: F403
from clonestore.testing.contract.transactions import *  # noqa: F403
from clonestore.testing.contract.users import *  # noqa: F403
from clonestore.testing.contract.validation import *  # noqa: F403
from clonestore.testing.properties.operations import *  # noqa: F403
from clonestore.testing.properties.queries import *  # noqa: F403

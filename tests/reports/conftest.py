from collections.abc import Callable

import pytest

from leadflow.services.context import Leadflow
from tests.reports.history import History, build_history


@pytest.fixture
def history(make_app: Callable[[str], Leadflow]) -> History:
    return build_history(make_app)

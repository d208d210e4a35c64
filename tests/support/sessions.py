"""Session resources shared by several suites' conftests.

A session-scoped fixture defined in (or imported into) a suite's conftest is a fixture of that
conftest: two suites that import it would each start the resource. ``once_per_session`` keeps
what a fixture opened in the session itself, so the resource is started once, by whichever suite
asks first, and closed when the session's own teardown runs. An opening that failed (or
skipped) fails (or skips) every later asker the same way, as pytest does for one fixture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
_OPENED = pytest.StashKey[dict[str, Any]]()


def once_per_session(request: pytest.FixtureRequest,
                     open_resource: Callable[[], AbstractContextManager[T]]) -> T:
    """The value of ``open_resource()`` entered once per session under this fixture's name."""
    opened = request.session.stash.setdefault(_OPENED, {})
    name = request.fixturename
    if name not in opened:
        stack = contextlib.ExitStack()
        try:
            opened[name] = (stack.enter_context(open_resource()), None)
        except BaseException as failure:  # a skip too: later askers skip the same way
            opened[name] = (None, failure)
            stack.close()
        else:
            request.session.addfinalizer(stack.close)
    value, failure = opened[name]
    if failure is not None:
        raise failure
    return value  # type: ignore[no-any-return]

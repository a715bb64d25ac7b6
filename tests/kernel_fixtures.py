"""The kernel fixtures of the kernel tests, loaded with ``pytest_plugins = ["kernel_fixtures"]``.

Used by tests/test_kernel.py and tests/test_approval_kernel.py. Module-scoped fixtures are set up
once per test module that asks for them, so each of those files gets its own shared kernel.
"""

from __future__ import annotations

import pytest
from kernel_helpers import running_kernel


@pytest.fixture(scope="module")
def kernel():
    """A kernel shared by the tests of one module that leave it in a clean state: (km, kc)."""
    with running_kernel() as pair:
        yield pair


@pytest.fixture
def kc(kernel):
    return kernel[1]


@pytest.fixture
def own_kernel():
    """A kernel for one test: for interrupts and timeouts, which could wedge a shared one."""
    with running_kernel() as pair:
        yield pair

"""``import litellm`` as smol-magic needs it: its bundled cost map, no banner.

Without ``LITELLM_LOCAL_MODEL_COST_MAP``, importing litellm fetches the cost map from GitHub (retries and
timeouts on a machine without internet). One place for every module that needs litellm itself.
"""

from __future__ import annotations

import os
from types import ModuleType


def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    module.suppress_debug_info = True
    return module

import os

import pytest
import torch

# Fixed threads and seeds: the tests compare numbers exactly or to tight tolerances.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=["compiled", "eager"], scope="module")
def cpu_path(request):
    """Run a metrics test module on both CPU paths of `qgnb.metrics.score`: the compiled one
    (`qgnb.metrics.fused`, the default on CPU) and eager torch (the path GPUs take)."""
    from qgnb.metrics import batched

    saved = batched.FUSED_ON_CPU
    batched.FUSED_ON_CPU = request.param == "compiled"
    yield request.param
    batched.FUSED_ON_CPU = saved

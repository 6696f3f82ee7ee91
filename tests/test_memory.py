import os
import platform
import subprocess
import sys

import pytest

# A fresh process (its own malloc state) renders three chunks after two warm-up chunks and prints
# the fewest minor page faults one of them took.
RENDER = """
import resource, sys, torch
torch.set_num_threads(1)
from noisevision.memory import keep_freed_memory
assert keep_freed_memory()
from noisevision import generators
g = generators.get("stat-spectrum_color_wmm")
g(range(8), res=128); g(range(8, 16), res=128)
faults = []
for k in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    g(range(16 + 8 * k, 24 + 8 * k), res=128)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_rendering_reuses_freed_memory():
    out = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, check=True)
    # Under glibc's own thresholds the temporaries go back to the OS and are faulted in again:
    # 5,000 to 20,000 pages per chunk here. Kept, a chunk reuses them.
    assert int(out.stdout.split()[-1]) < 200


def test_importing_noisevision_changes_nothing_in_the_process():
    """No environment variables or allocator settings at import: only `tune_process()` makes them."""
    code = (
        "import os; before = dict(os.environ); import noisevision, noisevision.generators; "
        "assert dict(os.environ) == before, set(os.environ) ^ set(before); "
        "from noisevision.memory import tune_process; tune_process(); "
        "assert os.environ['THP_MEM_ALLOC_ENABLE'] == '1'"
    )
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

"""CPU runtime settings for torch inference and training: threads and OpenMP waiting."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import joblib


def prefer_sleeping_openmp_threads() -> bool:
    """Before torch is first imported: let idle OpenMP threads sleep, not spin.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy: spinning idle threads
    compete with the working ones on a machine shared with other work (README
    "Performance" has the measurements).  Call it at the start of a program, never at
    import; returns whether it could still take effect (torch not yet imported).
    """
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


def usable_cpus() -> int:
    """CPUs this process may use: joblib's count (the affinity mask, capped by a cgroup CPU
    quota)."""
    return max(1, joblib.cpu_count())


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Run torch with ``n`` intra-op threads (None: :func:`usable_cpus`), restored on exit."""
    import torch

    n = usable_cpus() if n is None else n
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)

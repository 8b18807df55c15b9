"""PaddleKits: detection, segmentation and NLP kits on one training, compression and export core.

This module stays light on purpose: importing ``kits`` must not import paddle.
"""

import os as _os

__version__ = "0.1.0"


def _mkl_on_amd() -> None:
    """Let paddle's bundled MKL use its AVX2 kernels on AMD CPUs.

    That MKL build picks a generic code path on non-Intel CPUs unless ``MKL_DEBUG_CPU_TYPE=5``
    is set; on an AMD EPYC it made paddle's float32 matmuls (Linear layers, im2col convolutions)
    about 3x slower. MKL reads the variable at its first call, so setting it here is early
    enough. A value the user set is kept.
    """
    if "MKL_DEBUG_CPU_TYPE" in _os.environ:
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    if "AuthenticAMD" in line:
                        _os.environ["MKL_DEBUG_CPU_TYPE"] = "5"
                    return
    except OSError:
        pass  # not Linux: nothing to do


_mkl_on_amd()

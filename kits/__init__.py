"""PaddleKits: detection, segmentation and NLP kits on one training, compression and export core.

This module stays light on purpose: importing ``kits`` must not import paddle.
"""

import os as _os
import sys as _sys

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


def _contiguous_views() -> None:
    """Have paddle's reshape / transpose / slice write contiguous outputs in eager mode.

    With paddle 3's default stride kernels they return strided views, and the next kernel or the
    backward pass copies them through a slow generic path: on the MiniLM fine-tuning step
    (``benchmarks/nlp.py``) the reshape gradients alone took 7% of the step, and turning the
    views off made the whole step about 18% faster (same batches, alternating rounds), with
    detection and segmentation steps no slower. Paddle reads ``FLAGS_*`` variables when it is
    imported (or is told directly if it already is); a value the user set is kept.
    """
    if "FLAGS_use_stride_kernel" in _os.environ:
        return
    _os.environ["FLAGS_use_stride_kernel"] = "0"
    paddle = _sys.modules.get("paddle")
    if paddle is not None and hasattr(paddle, "set_flags"):  # imported before kits: set it directly
        paddle.set_flags({"FLAGS_use_stride_kernel": False})


_mkl_on_amd()
_contiguous_views()

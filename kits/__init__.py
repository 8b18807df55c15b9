"""PaddleKits: detection, segmentation and NLP kits on one training, compression and export core.

This module stays light on purpose: importing ``kits`` must not import paddle.
"""

__version__ = "0.1.0"

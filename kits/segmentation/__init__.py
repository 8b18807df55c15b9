"""Semantic segmentation kit: models, pretrained weights and (later) data, training and export."""

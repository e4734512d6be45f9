"""mkdseg: semi-supervised semantic segmentation with Mutual Knowledge Distillation."""

__version__ = "0.1.0"

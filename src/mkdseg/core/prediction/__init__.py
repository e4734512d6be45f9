"""Prediction, in one place: what a trained model is and how it segments.

- ``segmenter.py``: the deployable ``Segmenter`` (normalisation + network, RGB in [0, 1] ->
  logits at the input size) and the bundle files that hold it or every trained network;
- ``inference.py``: whole-image and sliding-window prediction (evaluation, image scoring);
- ``folder.py``: a folder of new images -> palette masks and overlays (the prediction pipeline).
"""

"""The face mesh model's own "is there a face here" score, which mediapipe's Python
``FaceMesh`` solution uses internally but does not return.

:class:`PresenceScorer` runs mediapipe 0.10.21's bundled ``face_landmark.tflite`` (the
468-point model) on a square image and returns the sigmoid of its face-flag output, in
[0, 1]. Given the region mediapipe itself would track (the landmarks' box, 1.5x, turned
upright), a real face scores ~1 and a landmark fit on a non-face or on part of a face
scores low. It is the landmark confidence of :mod:`facenormals3d.face.detect`.
"""

from __future__ import annotations

import numpy as np

#: Side of the landmark model's input, pixels.
INPUT_SIDE = 192

_GRAPH = """
input_stream: "image"
output_stream: "score"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: %(side)d output_tensor_height: %(side)d keep_aspect_ratio: false
    output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  output_stream: "TENSORS:output_tensors"
  options: { [mediapipe.InferenceCalculatorOptions.ext] {
    model_path: "mediapipe/modules/face_landmark/face_landmark.tflite" delegate { xnnpack {} } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensors"
  output_stream: "flag_tensor"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] {
    ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } } }
}
node {
  calculator: "TensorsToFloatsCalculator"
  input_stream: "TENSORS:flag_tensor"
  output_stream: "FLOAT:score"
  options: { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: SIGMOID } }
}
"""


class PresenceScorer:
    """Face-presence score of the face mesh model on one square image (close when done)."""

    def __init__(self):
        # The option messages must be registered before the graph text is parsed.
        from mediapipe.calculators.core import split_vector_calculator_pb2  # noqa: F401
        from mediapipe.calculators.tensor import (  # noqa: F401
            image_to_tensor_calculator_pb2, inference_calculator_pb2,
            tensors_to_floats_calculator_pb2)
        from mediapipe.python.solution_base import SolutionBase

        self._graph = SolutionBase(graph_config=_GRAPH % {"side": INPUT_SIDE})

    def score(self, patch: np.ndarray) -> float:
        """Presence in [0, 1] for ``patch``: ``N x N x 3`` uint8 RGB, the face upright and
        framed like mediapipe's tracking region (best at ``INPUT_SIDE`` pixels)."""
        img = np.ascontiguousarray(patch, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"presence needs an N x N x 3 uint8 image, got shape {img.shape}")
        return float(self._graph.process({"image": img}).score)

    def close(self) -> None:
        self._graph.close()

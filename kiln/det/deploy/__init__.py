"""Deployment: ONNX export of kiln detectors and an onnxruntime runner (see docs/deploy.md).

``onnx`` / ``onnxruntime`` are optional (``pip install kiln[deploy]``); they are imported when used.
"""
from .onnx_export import DetectorExportModule, export_onnx, read_metadata
from .ort_model import ORTDetector

__all__ = ['DetectorExportModule', 'export_onnx', 'read_metadata', 'ORTDetector']

"""Evaluation: normal-map metrics, scan alignment and scan-to-mesh distances, reports."""

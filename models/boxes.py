"""Box geometry shared by the face detectors and the faces stage (no imports: the stage
reads it without loading OpenCV or dlib). No DB, no Qt here."""
from __future__ import annotations


def box_iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0

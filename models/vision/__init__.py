"""Image models behind small interfaces (no DB, no Qt).

image_features  EfficientNet-Lite0: ImageNet probabilities + 1280-d features (ONNX Runtime)
ocr             PP-OCRv6 on-screen text (rapidocr-onnxruntime) and a cheap "might hold text" check
tags            calibrated thresholds that turn ImageNet probabilities into tags
calibrate       re-derives tag_thresholds.json (development tool; needs ffmpeg and opencv-doc)

Data files: imagenet_classes.txt is the standard ILSVRC-2012 class list (WordNet synonyms,
one line per class in model order), copied from OpenCV's samples/data/dnn/
classification_classes_ILSVRC2012.txt (Apache-2.0, as shipped in Debian's opencv-doc);
tag_thresholds.json is written by calibrate.py.
"""

"""Motion: spatio-temporal features learned from the library's own video (no DB, no Qt).

frames      the small grayscale frames motion works on, and their contrast normalisation
flow        optical-flow statistics of a window (Farneback on tiny frames)
isa         stacked convolutional Independent Subspace Analysis (Le et al. 2011) in torch
conv3d      a small 3-D conv encoder trained self-supervised (the alternative we compared)
encoder     loading/saving encoders as bytes, the shipped default, window responses
train       learning an encoder from sampled space-time blocks within a time/memory budget
descriptor  one clip descriptor per time window: encoder + flow + appearance
classifier  logistic-regression action tags: cross-validated accuracy, a threshold
cluster     k-means motion groups
synthetic   rendered moving objects on textures (default encoder, tests, benchmark)
"""

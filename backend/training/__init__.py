"""Training the estimator from synthetic renders of the ICT-FaceKit head: the morphable model,
a numpy rasteriser, the renderer of (image, normals, mask) pairs, training and evaluation."""

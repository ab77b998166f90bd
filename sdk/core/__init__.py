"""The contracts every package builds on: errors, the manifest, preprocessing, postprocessing, results.

Leaf layer: these modules import only the standard library, numpy (OpenCV where an image is read or resized) and each
other, never another package of the project.
"""

"""Layer-by-layer parity of the PyTorch port against the legacy Caffe (live) and against recorded Caffe blobs
(fixtures)."""

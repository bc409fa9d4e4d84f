"""A fastconv net handed to other runtimes: ONNX (:mod:`.onnx`) and PyTorch
(:mod:`.torch`). Each imports its library only when called."""

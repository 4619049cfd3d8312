"""birds-onnx's runtime: classify bird photos with an exported ONNX model, without torch.

Modules: preprocess (the one definition of image -> model input), onnx_model (the ONNX Runtime
classifier), stream (decoding ahead of batched inference), predict (the birds-predict command).
"""

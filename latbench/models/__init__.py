"""Model builders: torch modules (``torch_modules``) and ONNX graphs exported from them
(``onnx_export``) for every spec kind. The torch modules are the single definition of
the computation; the ONNX graphs are exported from them, so the two cannot drift."""

"""Embedding: the model and how it runs, its tokenizer, and the vector cache.

- `model`: which model (ModelSpec), the Embedder protocol, sentence-transformers in process;
- `tokenizer`: the model's own tokenizer, for chunk sizes (no torch);
- `onnx`: the model's ONNX export (made in a child process), int8 quantisation, onnxruntime;
- `backends`: which of those embeds chunks and queries, given the settings;
- `cache`: vectors on disk by (model, text), so nothing is embedded twice.
"""

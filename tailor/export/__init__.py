"""Getting a custom model's weights out: a plain Hugging Face folder (``hf``: a LoRA adapter merged
into its base) or one GGUF file for llama.cpp (``gguf``), checked by reading back what was written.
``model.export`` does either; ``tailor models export`` and the export jobs
(``jobs/model_export.py``) call it. Nothing here imports torch at import time."""

"""Exports of a finished dataset for its users: Hugging Face Parquet (hf) and VLMEvalKit
TSV (vlmevalkit). Run in the user's Python, never inside Blender; hf needs the packages
`datasets` and `pyarrow`, imported only by exports.hf, so vlmevalkit needs nothing extra."""

"""Scoring a model on the exported benchmark (headless/evaluate.py): reading predictions,
strict answer parsing, the report and its plots, constraint extraction (T2), reconstruction
from constraints (T3), a model runner for OpenAI-compatible endpoints and the human-baseline
sheet. Each module imports its heavy packages (matplotlib, scipy, networkx, openai, openpyxl,
jsonschema, selenium) itself, so importing scenegen_addon.dataset stays numpy-only."""

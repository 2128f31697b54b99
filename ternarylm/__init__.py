"""ternarylm: reproduction pipeline for TernaryLM (Nargund & Shukla, arXiv 2602.07374)."""

__version__ = "0.1.0"

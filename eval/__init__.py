"""Evaluation: retrieval metrics, MIRAGE, PubMedQA and reports (never imported by the assistant)."""

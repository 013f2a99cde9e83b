"""Metric learning: embeddings from P x K batches (judged by `retrieval` on held-out classes)."""

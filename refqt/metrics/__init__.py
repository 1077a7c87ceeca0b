"""Scores of generated sequences: corpus BLEU, token accuracy, exact match."""

from refqt.metrics.bleu import corpus_bleu, exact_match, strip_sequence, token_accuracy

__all__ = ["corpus_bleu", "exact_match", "strip_sequence", "token_accuracy"]

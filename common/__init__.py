"""Shared machinery of the BERT proof points: load, tokenize, build, evaluate, report."""

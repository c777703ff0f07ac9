"""Block schemas (TF-free); each block's build function imports Keras lazily."""

"""Multiple-instance learning: one label per bag of instances (judged by `bags`)."""

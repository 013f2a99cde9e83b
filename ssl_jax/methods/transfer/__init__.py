"""Transfer: fine-tuning a pretrained encoder, and domain adaptation (judged by `accuracy`)."""

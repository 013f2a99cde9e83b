"""Self-supervised methods: unlabelled images in, a representation out (judged by `representation`)."""

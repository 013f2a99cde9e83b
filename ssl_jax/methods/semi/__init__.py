"""Semi-supervised methods: a labelled split plus unlabelled images (judged by `accuracy`)."""

"""Evaluation: the suites that judge each family (`suites.SUITES`: representation, accuracy, bags,
retrieval), and their parts: batched prediction on the mesh, linear probe, kNN, retrieval metrics, online probe.

Typical use at the end of a run:

  feats_tr = extract_features(encode, train_images, batch_size=512, mesh=mesh)
  feats_te = extract_features(encode, test_images, batch_size=512, mesh=mesh)
  linear_probe(feats_tr, y_tr, feats_te, y_te, num_classes=10, mesh=mesh).top1
  knn_accuracy(feats_tr, y_tr, feats_te, y_te, num_classes=10, mesh=mesh)
"""

from ssl_jax.evaluation.features import apply_batched, extract_features
from ssl_jax.evaluation.knn import knn_accuracy, knn_classify
from ssl_jax.evaluation.linear_probe import LinearProbeResult, linear_probe
from ssl_jax.evaluation.online_probe import OnlineProbe, probe_loss_and_accuracy
from ssl_jax.evaluation.retrieval import retrieval_metrics

__all__ = [
    "LinearProbeResult",
    "apply_batched",
    "OnlineProbe",
    "extract_features",
    "knn_accuracy",
    "knn_classify",
    "linear_probe",
    "probe_loss_and_accuracy",
    "retrieval_metrics",
]

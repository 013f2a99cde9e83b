"""Every loss of self-, semi- and weakly supervised learning as a pure, jittable function.

    from ssl_jax import losses
    loss = losses.ntxent(z1, z2, temperature=0.1).mean()

Per-example losses return one value per example (the caller reduces); batch-coupled losses (Barlow Twins,
VICReg, KoLeo, SwAV, DINO) return a scalar and say so. Hyperparameters are keyword-only. Every batch-coupled loss
takes `axis_name=` and is exact when the batch is split across devices inside `jax.shard_map`. This package
imports neither TensorFlow nor any training machinery.
"""

from ssl_jax.losses.clustering import dino, dino_center, dino_per_example, sinkhorn_knopp, swav
from ssl_jax.losses.contrastive import info_nce, negative_cosine, ntxent, supcon
from ssl_jax.losses.metric import (batch_hard_triplet, batch_semi_hard_triplet, contrastive_margin,
                                   triplet_margin)
from ssl_jax.losses.mil import attention_pool, clam_instance_loss, mil_logsumexp, mil_max, mil_mean
from ssl_jax.losses.pretext import jigsaw, jigsaw_permutations, rotations
from ssl_jax.losses.reconstruction import (contractive_penalty, gaussian_kl, masked_reconstruction, patchify,
                                           random_masking, reparameterize, unpatchify, vae_elbo)
from ssl_jax.losses.redundancy import barlow_twins, koleo, vicreg, vicreg_terms
from ssl_jax.losses.semi_supervised import (MixMatchBatch, consistency_mse, fixmatch, mixmatch, mixmatch_loss, mixup,
                                            pseudo_label, sharpen, uda)

__all__ = [
    # contrastive
    "ntxent", "info_nce", "supcon", "negative_cosine",
    # redundancy reduction and spreading
    "barlow_twins", "vicreg", "vicreg_terms", "koleo",
    # clustering / self-distillation
    "sinkhorn_knopp", "swav", "dino", "dino_per_example", "dino_center",
    # metric learning
    "contrastive_margin", "triplet_margin", "batch_hard_triplet", "batch_semi_hard_triplet",
    # semi-supervised
    "pseudo_label", "fixmatch", "consistency_mse", "uda", "sharpen", "mixup", "mixmatch", "mixmatch_loss",
    "MixMatchBatch",
    # multiple-instance learning
    "mil_max", "mil_mean", "mil_logsumexp", "attention_pool", "clam_instance_loss",
    # reconstruction
    "gaussian_kl", "reparameterize", "vae_elbo", "contractive_penalty", "masked_reconstruction",
    "patchify", "unpatchify", "random_masking",
    # pretext tasks
    "rotations", "jigsaw", "jigsaw_permutations",
]
